//! The autovacuum stand-in against real PostgreSQL: it runs only where the server does not
//! vacuum by itself, and its first pass gives the planner statistics at once.

use propdesk_bench::vacuum::Vacuum;
use propdesk_testkit::TestDatabase;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

#[tokio::test]
async fn the_stand_in_analyses_only_where_autovacuum_is_off() {
    let db = TestDatabase::postgres().await;
    let store = db.store().await;
    let conn = store.connection();
    conn.execute_unprepared("CREATE TABLE readings (id bigint PRIMARY KEY)").await.unwrap();
    conn.execute_unprepared("INSERT INTO readings SELECT generate_series(1, 1000)").await.unwrap();
    let scalar = async |sql: &str| -> String {
        let row = conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
        row.try_get_by_index(0).unwrap()
    };
    let autovacuum = scalar("SHOW autovacuum").await;

    let vacuum = Vacuum::start_if_needed(&db.url).await.unwrap();
    match autovacuum.as_str() {
        "off" => {
            let log = vacuum.expect("a stand-in where autovacuum is off").stop().await;
            assert_eq!(log.passes, 1, "{log:?}");
            assert!(log.last_error.is_none(), "{log:?}");
            assert!(log.describe().contains("autovacuum off"));
            let rows = scalar("SELECT reltuples::bigint::text FROM pg_class WHERE relname = 'readings'").await;
            assert_eq!(rows, "1000", "the pass analysed the table");
        }
        "on" => assert!(vacuum.is_none(), "the server vacuums by itself; no stand-in"),
        other => panic!("SHOW autovacuum said {other}"),
    }
}
