//! The `auth-server` binary: parses the command line and the settings, then
//! serves or runs one CLI command (`cli`).

use std::io::Write;
use std::process::ExitCode;

use auth_server::cli::{self, Cli, Command, KeysCommand, UserCommand};
use auth_server::config::Settings;
use clap::Parser;

fn main() -> ExitCode {
    sigpipe(Sigpipe::Default);
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), std::env::vars()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    auth_server::logging::init_logging(&settings.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            sigpipe(Sigpipe::Ignore);
            serve(settings)
        }
        Command::Migrate => cli::migrate(&settings),
        Command::User(UserCommand::Add {
            email,
            username,
            name,
            admin,
        }) => cli::user_add(
            &settings,
            &email,
            username.as_deref(),
            name.as_deref(),
            admin,
        ),
        Command::Keys(KeysCommand::List) => cli::keys_list(&settings),
        Command::Keys(KeysCommand::Rotate) => cli::keys_rotate(&settings),
        Command::Keys(KeysCommand::Revoke { kid }) => cli::keys_revoke(&settings, &kid),
        Command::Keys(KeysCommand::Export { out }) => cli::keys_export(&settings, &out),
        Command::Keys(KeysCommand::Import { from }) => cli::keys_import(&settings, &from),
        Command::User(command) => cli::user_authority(&settings, command),
        Command::Admin(cli::AdminCommand::Create { email, invite }) => {
            cli::admin_create(&settings, &email, invite)
        }
        Command::Audit(cli::AuditCommand::Verify) => cli::audit_verify(&settings),
        Command::Client(command) => cli::client(&settings, command),
        Command::Org(command) => cli::org(&settings, command),
        Command::Mail(command) => cli::mail(&settings, command),
        Command::Healthcheck => cli::healthcheck(&settings),
        Command::ConfigHelp => {
            cli::config_help();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Sigpipe {
    /// The commands that print (`config-help | head`) end quietly when their
    /// reader goes away, as Unix tools do, instead of panicking on the
    /// failed write.
    Default,
    /// The server handles a closed connection where the write fails (Rust's
    /// own default).
    Ignore,
}

#[cfg(unix)]
fn sigpipe(disposition: Sigpipe) {
    let handler = match disposition {
        Sigpipe::Default => libc::SIG_DFL,
        Sigpipe::Ignore => libc::SIG_IGN,
    };
    // SAFETY: called on the main thread before any other thread exists or
    // anything is written; it only sets the disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, handler);
    }
}

#[cfg(not(unix))]
fn sigpipe(_: Sigpipe) {}

/// glibc gives each thread that allocates an arena of its own (up to 8 per
/// core) and keeps what is freed in it: under load, with request workers and
/// blocking threads (Argon2, database) all allocating, that alone added
/// ≈ 9 MiB of peak RSS in the bench. Two arenas serve two cores well enough;
/// Argon2's buffers are per hashing thread and reused, not malloc churn.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt takes glibc's own lock and only changes a parameter;
    // it is called first thing, before the server's threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn serve(settings: Settings) -> anyhow::Result<()> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = auth_server::start(settings).await?;
        // Tests and scripts wait for this exact line (the port may have been 0).
        println!("listening on {}", app.base_url());
        std::io::stdout().flush()?;
        tracing::info!(addr = %app.addr, "serving");
        // SIGTERM/SIGINT: readiness turns 503, then a graceful stop (app.rs).
        app.server.await?;
        tracing::info!("stopped");
        Ok(())
    })
}
