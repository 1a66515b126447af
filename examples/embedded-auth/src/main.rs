//! Runs the example on 127.0.0.1:9100 with a SQLite file and mail written
//! to `./var-embedded/mail` (override with `EMBEDDED_DATABASE_URL`).

use embedded_auth::{Config, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let var = std::path::PathBuf::from("var-embedded");
    std::fs::create_dir_all(&var)?;
    let running = start(Config {
        database_url: std::env::var("EMBEDDED_DATABASE_URL")
            .unwrap_or_else(|_| var.join("app.db").to_string_lossy().into_owned()),
        keys_dir: var.join("keys"),
        mail: mailer::TransportConfig::File {
            dir: var.join("mail"),
        },
        mail_from: "Example <no-reply@localhost>".to_owned(),
        bind: "127.0.0.1:9100".to_owned(),
    })
    .await?;
    eprintln!("listening on {}", running.base_url);
    running.server.await?;
    Ok(())
}
