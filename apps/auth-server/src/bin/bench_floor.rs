//! `bench_floor`: the ceiling `cargo xtask bench` measures the server
//! against. A bare actix-web handler answering `GET /healthz` exactly as the
//! server does (same body and content type, same worker count, same logging
//! set-up), optionally behind the server's own middleware, one layer at a
//! time, to price each layer:
//!
//! ```text
//! bench_floor [--layers headers,finish,span] [--workers N]
//! ```
//!
//! `headers` is the server's security headers, `finish` its
//! `finish_responses`, `span` its `request_span` (without the metrics,
//! which need the front-end's state). Prints `listening on http://ADDR` once
//! bound, then serves until killed. Not part of the service: nothing else
//! uses it.

use std::io::Write;
use std::net::TcpListener;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(r#"{"status":"ok"}"#)
}

fn main() -> std::io::Result<()> {
    let mut layers = String::new();
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--layers", Some(value)) => layers = value,
            ("--workers", Some(value)) => {
                workers = value.parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "--workers N")
                })?;
            }
            _ => {
                eprintln!("usage: bench_floor [--layers headers,finish,span] [--workers N]");
                std::process::exit(2);
            }
        }
    }
    let has = |name: &str| layers.split(',').any(|l| l.trim() == name);
    let (headers, finish, span) = (has("headers"), has("finish"), has("span"));
    auth_server::logging::init_logging(&auth_server::config::LogFormat::Text);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    actix_web::rt::System::new().block_on(async move {
        let server = if headers || finish || span {
            HttpServer::new(move || {
                App::new()
                    .wrap(Condition::new(finish, from_fn(auth_http::finish_responses)))
                    .wrap(Condition::new(
                        headers,
                        auth_server::app::security_headers(false),
                    ))
                    .wrap(Condition::new(span, from_fn(auth_http::request_span)))
                    .route("/healthz", web::get().to(healthz))
            })
            .workers(workers)
            .listen(listener)?
            .run()
        } else {
            HttpServer::new(|| App::new().route("/healthz", web::get().to(healthz)))
                .workers(workers)
                .listen(listener)?
                .run()
        };
        server.await
    })
}
