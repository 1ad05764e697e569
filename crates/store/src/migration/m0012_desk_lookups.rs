//! What the reception desk finds tickets and residents by: the reporter's and the
//! resident's phone as one normalised key, the unit's, resident's and agent's tickets newest
//! first, free text (see `crate::search`), and each owner's open follow-ups by due time.
//! Existing tickets are indexed here, from their logged text and the notes staff wrote.

use propdesk_domain::search::{index_terms, phone_key};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_len_null;

use super::index;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0012_desk_lookups"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("tickets").add_column(string_len_null("reporter_phone_key", 32)).take())
            .await?;
        manager
            .alter_table(Table::alter().table("residents").add_column(string_len_null("phone_key", 32)).take())
            .await?;
        // Partial: the many tickets without a phone, unit or resident would otherwise all
        // insert at one end of one key, a page every concurrent create fights over. An
        // agent's tickets are found through the (first_contact_agent_id, request_id)
        // index: one on (agent, id) is such a page for every create of a busy agent.
        for (name, column) in [
            ("tickets_phone", "reporter_phone_key"),
            ("tickets_unit_id", "unit_id"),
            ("tickets_resident_id", "resident_id"),
        ] {
            let sql = format!("CREATE INDEX {name} ON tickets ({column}, id) WHERE {column} IS NOT NULL");
            manager.get_connection().execute_unprepared(&sql).await?;
        }
        let indexes = [
            index("residents", "residents_phone", &["property_id", "phone_key"]),
            index("residents", "residents_name", &["property_id", "name", "id"]),
            index("follow_ups", "follow_ups_owner_due", &["owner_id", "state", "due_by"]),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let statements: &[&str] = match backend {
            DbBackend::Postgres => &[
                "CREATE TABLE ticket_search (ticket_id varchar(36) PRIMARY KEY, document tsvector NOT NULL)",
                "CREATE INDEX ticket_search_document ON ticket_search USING GIN (document)",
            ],
            _ => &[
                "CREATE TABLE ticket_search_docs (doc INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL UNIQUE)",
                "CREATE VIRTUAL TABLE ticket_search USING fts5 (document, tokenize = 'unicode61 remove_diacritics 0')",
            ],
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        backfill(db, backend).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Phone keys and index entries of the tickets and residents already stored.
async fn backfill(db: &SchemaManagerConnection<'_>, backend: DbBackend) -> Result<(), DbErr> {
    let residents = db.query_all_raw(Statement::from_string(backend, "SELECT id, phone FROM residents")).await?;
    for row in residents {
        let (id, phone): (String, String) = (row.try_get("", "id")?, row.try_get("", "phone")?);
        let sql = placeholders(backend, "UPDATE residents SET phone_key = ? WHERE id = ?");
        db.execute_raw(Statement::from_sql_and_values(backend, sql, [phone_key(&phone).into(), id.into()])).await?;
    }
    let tickets = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, reporter_phone, title, description, location, unit_label FROM tickets",
        ))
        .await?;
    for row in tickets {
        let id: String = row.try_get("", "id")?;
        let phone: String = row.try_get("", "reporter_phone")?;
        let mut text = [
            row.try_get::<String>("", "title")?,
            row.try_get("", "description")?,
            row.try_get("", "location")?,
            row.try_get::<Option<String>>("", "unit_label")?.unwrap_or_default(),
        ]
        .join(" ");
        let notes = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                placeholders(backend, "SELECT note FROM ticket_events WHERE ticket_id = ? AND actor_role IS NOT NULL"),
                [id.clone().into()],
            ))
            .await?;
        for note in notes {
            text.push(' ');
            text.push_str(&note.try_get::<String>("", "note")?);
        }
        let terms = index_terms(&text);
        let mut statements = vec![(
            "UPDATE tickets SET reporter_phone_key = ? WHERE id = ?",
            vec![phone_key(&phone).into(), id.clone().into()],
        )];
        match backend {
            DbBackend::Postgres => statements.push((
                "INSERT INTO ticket_search (ticket_id, document) VALUES (?, to_tsvector('simple', ?))",
                vec![id.into(), terms.into()],
            )),
            _ => {
                statements.push(("INSERT INTO ticket_search_docs (ticket_id) VALUES (?)", vec![id.clone().into()]));
                statements.push((
                    "INSERT INTO ticket_search (rowid, document) SELECT doc, ? FROM ticket_search_docs WHERE ticket_id = ?",
                    vec![terms.into(), id.into()],
                ));
            }
        }
        for (sql, values) in statements {
            db.execute_raw(Statement::from_sql_and_values(backend, placeholders(backend, sql), values)).await?;
        }
    }
    Ok(())
}

/// `?` placeholders as the backend writes them (`$1`, `$2`, … on PostgreSQL).
fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}
