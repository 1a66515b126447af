//! `cargo run -p sso-client` next to a running auth server that knows it
//! (`auth-server client add`, see the README's "Single sign-on"): `BIND`
//! (default 127.0.0.1:9200) and the variables of `Settings::from_env`.

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let settings = sso_client::Settings::from_env()?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9200".into());
    let listener =
        std::net::TcpListener::bind(&bind).with_context(|| format!("cannot listen on {bind}"))?;
    println!(
        "sso-client on {}/ (listening on {bind}), signing in through {}",
        settings.app_url, settings.issuer
    );
    sso_client::serve(listener, settings)?.await?;
    Ok(())
}
