//! The free-text index of tickets: the terms of `propdesk_domain::search` for a ticket's
//! title, description, location and unit label as logged, and for every note staff add.
//! PostgreSQL keeps them in a `tsvector` (GIN index), SQLite in an FTS5 table; both are
//! written in the same transaction as the ticket, and only ever appended to, so words a
//! ticket once had (the original description, a corrected category's note) still find it.

use std::collections::BTreeMap;

use propdesk_domain::search::{Query, index_terms};
use propdesk_domain::{By, Recorded, TicketFacts};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order};
use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Select, Statement};

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

/// Appends `text`'s terms to each ticket's index entry (creating it when missing).
pub(crate) async fn index(txn: &Transaction, texts: Vec<(&str, String)>) -> Result<(), StoreError> {
    // One entry per ticket: a statement may not touch the same row twice.
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

/// Narrows a ticket query to the tickets matching `query`, best match first, newest first
/// among equals.
pub(crate) fn matching(
    mut select: Select<ticket::Entity>,
    backend: DbBackend,
    query: &Query,
) -> Select<ticket::Entity> {
    let statement = QueryTrait::query(&mut select);
    match backend {
        DbBackend::Postgres => {
            // `'漏水' & 'elev':*`: terms hold only letters, digits and CJK, so quoting is safe.
            let text = query
                .terms
                .iter()
                .map(|term| format!("'{}'{}", term.text, if term.prefix { ":*" } else { "" }))
                .collect::<Vec<_>>()
                .join(" & ");
            statement
                .inner_join(
                    Alias::new("ticket_search"),
                    Expr::col((Alias::new("ticket_search"), Alias::new("ticket_id")))
                        .equals((ticket::Entity, ticket::Column::Id)),
                )
                .and_where(Expr::cust_with_values("ticket_search.document @@ to_tsquery('simple', $1)", [text.clone()]))
                .order_by_expr(
                    Expr::cust_with_values("ts_rank(ticket_search.document, to_tsquery('simple', $1))", [text]),
                    Order::Desc,
                );
        }
        _ => {
            // `"漏水" "elev"*`: FTS5 requires every phrase.
            let text = query
                .terms
                .iter()
                .map(|term| format!("\"{}\"{}", term.text, if term.prefix { "*" } else { "" }))
                .collect::<Vec<_>>()
                .join(" AND ");
            statement
                .inner_join(
                    Alias::new("ticket_search_docs"),
                    Expr::col((Alias::new("ticket_search_docs"), Alias::new("ticket_id")))
                        .equals((ticket::Entity, ticket::Column::Id)),
                )
                .inner_join(Alias::new("ticket_search"), Expr::cust("ticket_search.rowid = ticket_search_docs.doc"))
                .and_where(Expr::cust_with_values("ticket_search MATCH ?", [text]))
                // bm25: smaller is better.
                .order_by_expr(Expr::cust("bm25(ticket_search)"), Order::Asc);
        }
    }
    statement.order_by((ticket::Entity, ticket::Column::Id), Order::Desc);
    select
}
