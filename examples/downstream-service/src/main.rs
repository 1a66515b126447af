//! `cargo run -p downstream-service` next to a running auth server;
//! `BIND` (default 127.0.0.1:9000) and the variables of `Settings::from_env`.

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let settings = downstream_service::Settings::from_env()?;
    let verifier = settings.verifier().await.with_context(|| {
        format!(
            "cannot reach the auth server at {}",
            settings.auth_server_url
        )
    })?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let listener =
        std::net::TcpListener::bind(&bind).with_context(|| format!("cannot listen on {bind}"))?;
    println!(
        "downstream-service on http://{bind}, trusting {}",
        settings.auth_server_url
    );
    downstream_service::serve(listener, verifier)?.await?;
    Ok(())
}
