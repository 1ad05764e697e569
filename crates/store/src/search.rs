//! The free-text index of tickets: the terms of `propdesk_domain::search` for a ticket's
//! title, description, location and unit label as logged, and for every note staff add.
//! PostgreSQL keeps them in a `tsvector` (GIN index), SQLite in an FTS5 table; both are
//! written in the same transaction as the ticket, and only ever appended to, so words a
//! ticket once had (the original description, a corrected category's note) still find it.

use std::collections::BTreeMap;

use propdesk_domain::search::{Query, index_terms};
use propdesk_domain::{By, Recorded, TicketFacts};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Func, JoinType, Order, Query as Sql};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryTrait, Select, Statement};

use crate::StoreError;
use crate::entity::ticket;
use crate::work::Transaction;

/// The text a ticket is found by when it is logged.
pub(crate) fn logged_text(t: &TicketFacts) -> String {
    [t.title.as_str(), &t.description, &t.location, t.unit_label.as_deref().unwrap_or_default()].join(" ")
}

/// What a history event adds to the index: the words staff wrote, in a note or as the
/// corrected value of a field (a new title, more of the resident's words, a new place).
pub(crate) fn note_text(event: &Recorded) -> Option<String> {
    if !matches!(event.by, By::Staff { .. }) {
        return None;
    }
    let corrected = event.changes.iter().map(|change| change.after.as_str());
    let text = std::iter::once(event.note.as_str()).chain(corrected).collect::<Vec<_>>().join(" ");
    (!text.trim().is_empty()).then_some(text)
}

/// PostgreSQL's index table and its columns.
pub(crate) const POSTGRES_TABLE: &str = "ticket_search";
pub(crate) const TICKET_ID: &str = "ticket_id";
pub(crate) const DOCUMENT: &str = "document";

/// PostgreSQL's document of a ticket's terms.
pub(crate) fn postgres_document(terms: Expr) -> Expr {
    Func::cust(Alias::new("to_tsvector")).arg(Expr::cust("'simple'")).arg(terms).into()
}

/// The terms of `texts` by ticket, one entry per ticket (a statement may not touch the same
/// row twice); tickets whose texts have no terms are left out.
pub(crate) fn terms_by_ticket(texts: Vec<(&str, String)>) -> BTreeMap<&str, String> {
    let mut merged: BTreeMap<&str, String> = BTreeMap::new();
    for (ticket_id, text) in texts {
        let terms = index_terms(&text);
        if terms.is_empty() {
            continue;
        }
        let entry = merged.entry(ticket_id).or_default();
        if !entry.is_empty() {
            entry.push(' ');
        }
        entry.push_str(&terms);
    }
    merged
}

/// Appends `text`'s terms to each ticket's index entry (creating it when missing).
pub(crate) async fn index(txn: &Transaction, texts: Vec<(&str, String)>) -> Result<(), StoreError> {
    let merged = terms_by_ticket(texts);
    if merged.is_empty() {
        return Ok(());
    }
    let db = &txn.inner;
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let mut sql = String::from("INSERT INTO ticket_search (ticket_id, document) VALUES ");
            let mut values = Vec::with_capacity(merged.len() * 2);
            for (n, (ticket_id, terms)) in merged.into_iter().enumerate() {
                if n > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, to_tsvector('simple', ${}))", 2 * n + 1, 2 * n + 2));
                values.push(ticket_id.into());
                values.push(terms.into());
            }
            sql.push_str(
                " ON CONFLICT (ticket_id) DO UPDATE SET document = ticket_search.document || EXCLUDED.document",
            );
            db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
        }
        backend => {
            // FTS5 rows are keyed by an integer: `ticket_search_docs` gives each ticket one.
            for (ticket_id, terms) in merged {
                let statement =
                    |sql: &str, values: Vec<sea_orm::Value>| Statement::from_sql_and_values(backend, sql, values);
                db.execute_raw(statement(
                    "INSERT INTO ticket_search_docs (ticket_id) VALUES (?) ON CONFLICT (ticket_id) DO NOTHING",
                    vec![ticket_id.into()],
                ))
                .await?;
                let appended = db
                    .execute_raw(statement(
                        "UPDATE ticket_search SET document = document || ' ' || ? \
                         WHERE rowid = (SELECT doc FROM ticket_search_docs WHERE ticket_id = ?)",
                        vec![terms.clone().into(), ticket_id.into()],
                    ))
                    .await?;
                if appended.rows_affected() == 0 {
                    db.execute_raw(statement(
                        "INSERT INTO ticket_search (rowid, document) \
                         SELECT doc, ? FROM ticket_search_docs WHERE ticket_id = ?",
                        vec![terms.into(), ticket_id.into()],
                    ))
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// How many of the newest matches a search ranks. A common word matches tens of
/// thousands of tickets; ranking them all would cost seconds, so a search ranks the
/// newest matches of the caller's filters, which is what a desk looks for.
pub const SEARCH_WINDOW: u64 = 1_000;

/// `'漏水' & 'elev':*` (PostgreSQL) or `"漏水" AND "elev"*` (FTS5). Terms hold only letters,
/// digits and CJK characters, so quoting them is safe.
fn query_text(query: &Query, backend: DbBackend) -> String {
    let postgres = backend == DbBackend::Postgres;
    let term = |t: &propdesk_domain::search::Term| match (postgres, t.prefix) {
        (true, prefix) => format!("'{}'{}", t.text, if prefix { ":*" } else { "" }),
        (false, prefix) => format!("\"{}\"{}", t.text, if prefix { "*" } else { "" }),
    };
    query.terms.iter().map(term).collect::<Vec<_>>().join(if postgres { " & " } else { " AND " })
}

/// Whether more tickets than [`SEARCH_WINDOW`] match `query` (whatever the filters). On
/// PostgreSQL this decides the shape of the search: the planner estimates how common a
/// word is poorly enough to walk the whole window backwards for a rare word (most of a
/// second) or fetch every match of a common one; told which it is, both take milliseconds.
///
/// The planner's row estimate for one word is good (its statistics keep the common
/// words' shares), and a word it expects clearly more often than the window is taken as
/// common without counting: counting its first thousand matches costs more than the
/// search (7–11 ms for a word in one ticket in seven). Anything else is counted, because
/// an estimate too low only costs a count, while one too high would make a rare query
/// walk the whole table; several words are estimated as if independent, and words that
/// seldom meet would be just that.
pub(crate) async fn is_common(db: &impl ConnectionTrait, query: &Query) -> Result<bool, StoreError> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        return Ok(true);
    }
    let matches = format!("SELECT 1 FROM ticket_search WHERE document @@ {}", postgres_tsquery(query));
    if query.terms.len() == 1 {
        let plan = db.query_one_raw(Statement::from_string(backend, format!("EXPLAIN {matches}"))).await?;
        let top_line: Option<String> = plan.map(|row| row.try_get_by_index(0)).transpose()?;
        if top_line.as_deref().and_then(estimated_rows).is_some_and(|rows| rows > CLEARLY_COMMON * SEARCH_WINDOW) {
            return Ok(true);
        }
    }
    let counted = format!("SELECT COUNT(*) AS n FROM ({matches} LIMIT {}) AS m", SEARCH_WINDOW + 1);
    let row = db.query_one_raw(Statement::from_string(backend, counted)).await?;
    let matches: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or_default();
    Ok(matches > SEARCH_WINDOW as i64)
}

/// How many times [`SEARCH_WINDOW`] the statistics must expect before a query is taken
/// as common without counting.
const CLEARLY_COMMON: u64 = 3;

/// The row estimate of a plan's top line: `Bitmap Heap Scan on t  (cost=1.00..2.00 rows=42 width=0)`.
fn estimated_rows(plan_line: &str) -> Option<u64> {
    let (_, after) = plan_line.split_once(" rows=")?;
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// `to_tsquery('simple', '…')`: the query as PostgreSQL matches and ranks it.
fn postgres_tsquery(query: &Query) -> String {
    format!("to_tsquery('simple', {})", postgres_literal(query))
}

/// The query as a PostgreSQL string literal. Written into the statement, not bound: a
/// bound query gets a generic plan after a few runs, blind to how common its words are.
/// The text holds only quoted terms of letters, digits and CJK; quotes are doubled all the
/// same.
fn postgres_literal(query: &Query) -> String {
    format!("'{}'", query_text(query, DbBackend::Postgres).replace('\'', "''"))
}

/// The tickets `filter` selects that match `query`, best match first, newest first among
/// equals: for a `common` query, among the newest [`SEARCH_WINDOW`] matches.
pub(crate) fn matching(filter: Condition, backend: DbBackend, query: &Query, common: bool) -> Select<ticket::Entity> {
    let text = query_text(query, backend);
    let (hits, hit_id) = (Alias::new("hits"), Alias::new("hit_id"));
    let search = Alias::new("ticket_search");
    let search_id = || Expr::col((search.clone(), Alias::new("ticket_id")));
    let tickets_id = || (ticket::Entity, ticket::Column::Id);
    // The window: matches in newest-first order, so a common word stops after the first
    // thousand and a rare one is found through the text index. Only its rows are ranked.
    let mut window = Sql::select();
    let rank = match backend {
        DbBackend::Postgres => {
            let tsquery = postgres_tsquery(query);
            window
                .expr_as(search_id(), hit_id.clone())
                .from(search.clone())
                .inner_join(ticket::Entity, Expr::col(tickets_id()).equals((search.clone(), Alias::new("ticket_id"))))
                .and_where(Expr::cust(format!("ticket_search.document @@ {tsquery}")));
            if common {
                window.order_by((search.clone(), Alias::new("ticket_id")), Order::Desc);
            }
            // Scored against the document, read again by key for the window's rows.
            (Expr::cust(format!("ts_rank(ticket_search.document, {tsquery})")), Order::Desc)
        }
        _ => {
            let docs = Alias::new("ticket_search_docs");
            let rank = Alias::new("hit_rank");
            window
                .expr_as(Expr::col((docs.clone(), Alias::new("ticket_id"))), hit_id.clone())
                .expr_as(Expr::cust("bm25(ticket_search)"), rank.clone())
                .from(search.clone())
                .inner_join(docs.clone(), Expr::cust("ticket_search_docs.doc = ticket_search.rowid"))
                .inner_join(ticket::Entity, Expr::col(tickets_id()).equals((docs, Alias::new("ticket_id"))))
                .and_where(Expr::cust_with_values("ticket_search MATCH ?", [text]))
                .order_by_expr(Expr::cust("ticket_search.rowid"), Order::Desc);
            // bm25: smaller is better.
            (Expr::col((hits.clone(), rank)), Order::Asc)
        }
    };
    window.cond_where(filter);
    if common {
        window.limit(SEARCH_WINDOW);
    }
    let mut select = ticket::Entity::find();
    let statement = QueryTrait::query(&mut select);
    statement.join_subquery(JoinType::InnerJoin, window, hits.clone(), Expr::col((hits, hit_id)).equals(tickets_id()));
    if backend == DbBackend::Postgres {
        statement.inner_join(search.clone(), search_id().equals(tickets_id()));
    }
    statement.order_by_expr(rank.0, rank.1).order_by(tickets_id(), Order::Desc);
    select
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_estimate_is_read_off_the_plan_s_top_line() {
        let line = "Bitmap Heap Scan on ticket_search  (cost=112.22..4512.10 rows=14480 width=0)";
        assert_eq!(estimated_rows(line), Some(14480));
        assert_eq!(estimated_rows("Seq Scan on ticket_search  (cost=0.00..1.01 rows=1 width=4)"), Some(1));
        assert_eq!(estimated_rows("Result  (cost=0.00..0.01 width=4)"), None);
    }
}
