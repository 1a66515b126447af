//! Delivery end to end: real transports (an `.eml` folder, SMTP to an
//! in-process server) and the outbox worker on real SQLite and PostgreSQL
//! databases.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use mailer::test_smtp::{SmtpSink, six_digit_code};
use mailer::{
    Locale, MailError, Mailer, OutboxConfig, OutboxWorker, SmtpSecurity, Template, TransportConfig,
};
use secrecy::SecretString;
use storage::models::OutboxRow;
use storage::repo::outbox as repo;
use storage::test_support::TestDatabase;
use storage::{AnyConnection, Backend, DbPool, StorageError};

const FROM: &str = "Auth Server <no-reply@localhost>";
const WAIT: Duration = Duration::from_secs(10);

fn smtp_config(port: u16) -> TransportConfig {
    TransportConfig::Smtp {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
    }
}

/// A port with nothing listening: bound by the OS, then released.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

fn code_mail(code: &str) -> Template {
    Template::VerificationCode {
        code: code.into(),
        minutes: 10,
    }
}

/// A folder removed when the test ends, pass or fail.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("mailer-test-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn file_transport_writes_one_eml_per_message() {
    let tmp = TempDir::new();
    // Not created yet: Mailer::new must create it.
    let dir = tmp.0.join("outgoing");
    let mailer = Mailer::new(FROM, TransportConfig::File { dir: dir.clone() }).unwrap();
    let mail = mailer::render(&code_mail("314159"), Locale::En).unwrap();
    mailer
        .send(
            "first@example.com",
            &mail.subject,
            &mail.text,
            &mail.html,
            "id-1",
        )
        .await
        .unwrap();
    mailer
        .send(
            "second@example.com",
            &mail.subject,
            &mail.text,
            &mail.html,
            "id-2",
        )
        .await
        .unwrap();

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "eml")),
        "{names:?}"
    );
    files.sort_by_key(|f| f.contains("second@example.com"));
    assert!(files[0].contains("To: first@example.com"), "{}", files[0]);
    assert!(files[0].contains("X-Outbox-Id: id-1"), "{}", files[0]);
    assert!(files[1].contains("To: second@example.com"), "{}", files[1]);
    assert!(files[1].contains("multipart/alternative"), "{}", files[1]);
    assert!(files[1].contains("Message-ID: <"), "{}", files[1]);
}

#[tokio::test]
async fn smtp_transport_delivers_korean_mail() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(FROM, smtp_config(sink.port())).unwrap();
    let template = Template::OrganizationEmailCode {
        code: "582047".into(),
        organization: "한빛상사".into(),
        minutes: 10,
    };
    let mail = mailer::render(&template, Locale::Ko).unwrap();
    mailer
        .send(
            "kim@example.co.kr",
            &mail.subject,
            &mail.text,
            &mail.html,
            "outbox-1",
        )
        .await
        .unwrap();

    let received = sink
        .wait_for("kim@example.co.kr", WAIT)
        .await
        .expect("mail arrived");
    assert_eq!(received.from, "no-reply@localhost");
    assert_eq!(received.to, vec!["kim@example.co.kr".to_owned()]);
    assert_eq!(received.subject(), mail.subject);
    assert!(received.subject().contains("한빛상사"));
    let text = received.text_body();
    assert!(text.contains("인증 코드: 582047"), "{text}");
    assert!(text.contains("한빛상사 소속임을 확인"), "{text}");
    assert_eq!(six_digit_code(&text).as_deref(), Some("582047"));
    let html = received.html_body();
    assert!(
        html.contains("582047") && html.contains("<strong>한빛상사</strong>"),
        "{html}"
    );
    assert_eq!(received.header("X-Outbox-Id").as_deref(), Some("outbox-1"));
    assert!(received.header("Message-ID").is_some());
    assert!(
        received
            .header("From")
            .unwrap()
            .contains("no-reply@localhost")
    );
    // Non-ASCII travels encoded, never as raw 8-bit in the message source.
    assert!(!received.raw.contains("한빛상사"));

    // A second message reuses the pooled connection and is counted apart.
    mailer
        .send(
            "kim@example.co.kr",
            "again",
            "second",
            "<p>second</p>",
            "outbox-2",
        )
        .await
        .unwrap();
    assert_eq!(sink.count_to("kim@example.co.kr"), 2);
    assert_eq!(
        sink.wait_for("kim@example.co.kr", WAIT)
            .await
            .unwrap()
            .subject(),
        "again"
    );
    sink.stop().await;
}

#[tokio::test]
async fn smtp_transport_authenticates() {
    let sink = SmtpSink::start().await;
    let config = TransportConfig::Smtp {
        host: "127.0.0.1".into(),
        port: sink.port(),
        security: SmtpSecurity::None,
        username: Some("relay-user".into()),
        password: Some(SecretString::from("relay-password")),
        timeout: Duration::from_secs(5),
    };
    let mailer = Mailer::new(FROM, config).unwrap();
    mailer
        .send("a@example.com", "s", "t", "<p>h</p>", "x")
        .await
        .unwrap();
    assert_eq!(sink.auth_users(), vec!["relay-user".to_owned()]);
    sink.stop().await;
}

#[tokio::test]
async fn smtp_failures_are_send_errors_and_recover() {
    let port = free_port();
    let mailer = Mailer::new(FROM, smtp_config(port)).unwrap();
    let error = mailer
        .send("a@example.com", "s", "t", "<p>h</p>", "x")
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Send(_)), "{error:?}");
    assert!(!error.is_permanent());
    assert!(error.to_string().contains(&port.to_string()), "{error}");

    let sink = SmtpSink::start_on(port).await;
    mailer
        .send("a@example.com", "s", "t", "<p>h</p>", "x")
        .await
        .unwrap();
    assert_eq!(sink.count_to("a@example.com"), 1);

    // Bad input is refused before anything is sent.
    let error = mailer
        .send("not an address", "s", "t", "h", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(error, MailError::Address(_)) && error.is_permanent(),
        "{error:?}"
    );
    let error = mailer
        .send("a@example.com", "s", "t", "h", "x\r\nBcc: b@c.d")
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Build(_)), "{error:?}");
    assert_eq!(sink.messages().len(), 1);
    sink.stop().await;
}

// ---- outbox ------------------------------------------------------------

struct Db {
    // Kept for its Drop: the database goes away with the test.
    _db: TestDatabase,
    pool: DbPool,
}

async fn database(backend: Backend) -> Db {
    tokio::task::spawn_blocking(move || {
        let db = TestDatabase::create(backend);
        let pool = storage::connect(&db.url, &storage::PoolOptions::default()).expect("connect");
        storage::migrations::run_pending(&mut pool.get().unwrap()).expect("migrate");
        Db { _db: db, pool }
    })
    .await
    // Re-raise with TestDatabase's own message ("PostgreSQL is required …").
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Runs a storage call off the async executor, as the worker does.
async fn db<T, F>(pool: &DbPool, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection) -> Result<T, StorageError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || f(&mut pool.get().unwrap()).unwrap())
        .await
        .unwrap()
}

async fn queue(pool: &DbPool, recipient: &str, template: &Template) -> OutboxRow {
    let row = mailer::outbox_row(recipient, template, Locale::Ko).unwrap();
    let insert = row.clone();
    db(pool, move |conn| repo::insert(conn, &insert)).await;
    row
}

async fn find(pool: &DbPool, id: &str) -> OutboxRow {
    let id = id.to_owned();
    db(pool, move |conn| repo::find(conn, &id))
        .await
        .expect("row exists")
}

fn config(base_backoff: Duration, max_attempts: i64) -> OutboxConfig {
    OutboxConfig {
        poll_interval: Duration::from_secs(3600),
        max_attempts,
        base_backoff,
        lease: Duration::from_secs(30),
        batch: 20,
    }
}

async fn sleep_until_due(row: &OutboxRow) {
    let wait = (row.next_attempt_at - now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
}

/// SMTP down: the mail stays pending with a backoff; SMTP back: it is sent
/// exactly once and its bodies are cleared.
async fn retries_until_smtp_comes_back(backend: Backend) {
    let Db { _db, pool } = database(backend).await;
    let port = free_port();
    let mailer = Arc::new(Mailer::new(FROM, smtp_config(port)).unwrap());
    let backoff = Duration::from_millis(300);
    let worker = OutboxWorker::new(pool.clone(), mailer, config(backoff, 8));
    let recipient = "new-user@example.com";
    let queued = queue(&pool, recipient, &code_mail("864209")).await;

    let before = now();
    assert_eq!(worker.deliver_due().await.unwrap(), 0);
    let failed = find(&pool, &queued.id).await;
    assert_eq!(failed.status, repo::PENDING);
    assert_eq!(failed.attempts, 1);
    let error = failed.last_error.clone().expect("last_error set");
    assert!(error.contains(&port.to_string()), "{error}");
    assert!(
        failed.next_attempt_at >= before + backoff,
        "retry at {} is not {backoff:?} after {before}",
        failed.next_attempt_at
    );
    assert!(failed.next_attempt_at > now(), "retry is in the future");
    assert!(
        failed.text_body.contains("864209"),
        "bodies kept until sent"
    );

    // Not due yet: nothing is attempted (the attempt count stays).
    assert_eq!(worker.deliver_due().await.unwrap(), 0);
    assert_eq!(find(&pool, &queued.id).await.attempts, 1);

    let sink = SmtpSink::start_on(port).await;
    sleep_until_due(&failed).await;
    assert_eq!(worker.deliver_due().await.unwrap(), 1);
    assert_eq!(sink.count_to(recipient), 1);
    let received = sink.wait_for(recipient, WAIT).await.unwrap();
    assert_eq!(
        six_digit_code(&received.text_body()).as_deref(),
        Some("864209")
    );
    assert_eq!(received.subject(), queued.subject);
    assert_eq!(received.header("X-Outbox-Id"), Some(queued.id.clone()));

    let sent = find(&pool, &queued.id).await;
    assert_eq!(sent.status, repo::SENT);
    assert_eq!(sent.text_body, "");
    assert_eq!(sent.html_body, "");
    assert_eq!(sent.last_error, None);
    assert!(sent.sent_at.is_some_and(|at| at >= before));
    assert_eq!(
        sent.subject, queued.subject,
        "subject and template stay for the record"
    );
    assert_eq!(sent.template, "verification_code");

    assert_eq!(worker.deliver_due().await.unwrap(), 0);
    assert_eq!(sink.messages().len(), 1);
    sink.stop().await;
}

/// After `max_attempts` failures a mail is dead and left alone; `retry` puts
/// it back and it is delivered.
async fn dead_after_max_attempts_until_retried(backend: Backend) {
    let Db { _db, pool } = database(backend).await;
    let port = free_port();
    let mailer = Arc::new(Mailer::new(FROM, smtp_config(port)).unwrap());
    let worker = OutboxWorker::new(pool.clone(), mailer, config(Duration::from_millis(10), 3));
    let recipient = "unlucky@example.com";
    let queued = queue(&pool, recipient, &code_mail("120034")).await;

    for attempt in 1..=3 {
        let row = find(&pool, &queued.id).await;
        sleep_until_due(&row).await;
        assert_eq!(worker.deliver_due().await.unwrap(), 0);
        let row = find(&pool, &queued.id).await;
        assert_eq!(row.attempts, attempt);
        let expected = if attempt < 3 {
            repo::PENDING
        } else {
            repo::DEAD
        };
        assert_eq!(row.status, expected, "after attempt {attempt}");
    }
    let dead = find(&pool, &queued.id).await;
    assert!(dead.last_error.is_some());

    // Dead mail is not picked up again, even with SMTP back.
    let sink = SmtpSink::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(worker.deliver_due().await.unwrap(), 0);
    assert_eq!(find(&pool, &queued.id).await.attempts, 3);
    assert_eq!(sink.count_to(recipient), 0);

    let id = queued.id.clone();
    assert!(db(&pool, move |conn| repo::retry(conn, &id, now())).await);
    assert_eq!(worker.deliver_due().await.unwrap(), 1);
    assert_eq!(sink.count_to(recipient), 1);
    let sent = find(&pool, &queued.id).await;
    assert_eq!(sent.status, repo::SENT);
    assert_eq!((sent.text_body.as_str(), sent.html_body.as_str()), ("", ""));
    sink.stop().await;
}

/// Several workers on one queue: every mail goes out exactly once, because
/// each is claimed by one worker only.
async fn concurrent_workers_send_each_mail_once(backend: Backend) {
    let Db { _db, pool } = database(backend).await;
    let sink = SmtpSink::start().await;
    let mailer = Arc::new(Mailer::new(FROM, smtp_config(sink.port())).unwrap());
    let mut config = config(Duration::from_secs(1), 8);
    config.batch = 3; // several rounds per pass
    let workers: Vec<_> = (0..3)
        .map(|_| OutboxWorker::new(pool.clone(), Arc::clone(&mailer), config.clone()))
        .collect();
    let mut queued = Vec::new();
    for i in 0..10 {
        queued.push(
            queue(
                &pool,
                &format!("user{i}@example.com"),
                &code_mail(&format!("{:06}", 100_000 + i)),
            )
            .await,
        );
    }

    let (a, b, c) = tokio::join!(
        workers[0].deliver_due(),
        workers[1].deliver_due(),
        workers[2].deliver_due()
    );
    assert_eq!(a.unwrap() + b.unwrap() + c.unwrap(), 10);
    assert_eq!(sink.messages().len(), 10);
    for (i, row) in queued.iter().enumerate() {
        assert_eq!(sink.count_to(&format!("user{i}@example.com")), 1);
        assert_eq!(find(&pool, &row.id).await.status, repo::SENT);
    }
    sink.stop().await;
}

/// `run` wakes on the notifier instead of waiting out its (here: one hour)
/// poll interval.
async fn run_wakes_on_notify(backend: Backend) {
    let Db { _db, pool } = database(backend).await;
    let sink = SmtpSink::start().await;
    let mailer = Arc::new(Mailer::new(FROM, smtp_config(sink.port())).unwrap());
    let worker = OutboxWorker::new(pool.clone(), mailer, config(Duration::from_secs(1), 8));
    let notifier = worker.notifier();
    let running = tokio::spawn(worker.run());
    // Let the first (empty) pass finish so the worker is waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let queued = queue(&pool, "woken@example.com", &code_mail("777001")).await;
    notifier.notify_one();
    let received = sink.wait_for("woken@example.com", WAIT).await;
    let received = received.expect("delivered without waiting for the poll");
    assert_eq!(
        six_digit_code(&received.text_body()).as_deref(),
        Some("777001")
    );
    // The row is marked right after the send; give the worker a moment.
    for _ in 0..100 {
        if find(&pool, &queued.id).await.status == repo::SENT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = find(&pool, &queued.id).await.status;
    running.abort();
    assert_eq!(status, repo::SENT);
    sink.stop().await;
}

/// A mail whose recipient can never be valid is dead at once, not retried.
async fn unsendable_mail_is_dead_at_once(backend: Backend) {
    let Db { _db, pool } = database(backend).await;
    let sink = SmtpSink::start().await;
    let mailer = Arc::new(Mailer::new(FROM, smtp_config(sink.port())).unwrap());
    let worker = OutboxWorker::new(pool.clone(), mailer, config(Duration::ZERO, 8));
    // Bypasses outbox_row's check, as a row written by other code could.
    let mut row = mailer::outbox_row("fine@example.com", &code_mail("100200"), Locale::En).unwrap();
    row.recipient = "not an address".into();
    let insert = row.clone();
    db(&pool, move |conn| repo::insert(conn, &insert)).await;

    assert_eq!(worker.deliver_due().await.unwrap(), 0);
    let dead = find(&pool, &row.id).await;
    assert_eq!(dead.status, repo::DEAD);
    assert_eq!(dead.attempts, 1);
    assert!(dead.last_error.unwrap().contains("invalid mail address"));
    assert!(sink.messages().is_empty());
    sink.stop().await;
}

macro_rules! backend_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn retries_until_smtp_comes_back() {
                super::retries_until_smtp_comes_back($backend).await;
            }

            #[tokio::test]
            async fn dead_after_max_attempts_until_retried() {
                super::dead_after_max_attempts_until_retried($backend).await;
            }

            #[tokio::test]
            async fn concurrent_workers_send_each_mail_once() {
                super::concurrent_workers_send_each_mail_once($backend).await;
            }

            #[tokio::test]
            async fn run_wakes_on_notify() {
                super::run_wakes_on_notify($backend).await;
            }

            #[tokio::test]
            async fn unsendable_mail_is_dead_at_once() {
                super::unsendable_mail_is_dead_at_once($backend).await;
            }
        }
    };
}

backend_suite!(sqlite, Backend::Sqlite);
backend_suite!(postgres, Backend::Postgres);
