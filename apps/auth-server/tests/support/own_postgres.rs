//! A PostgreSQL cluster of a test's own (initdb + pg_ctl on a free port),
//! for tests that stop and start the database: the shared one is never
//! touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::free_port;

/// A throwaway PostgreSQL cluster, stopped and deleted on drop.
pub struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        let bin = postgres_bin_dir();
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("auth-faults-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = OwnPostgres { bin, dir, port };
        cluster.chown_to_postgres_if_root();
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.pg_ctl_start();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    pub fn pg_ctl_start(&self) {
        let options = format!("-p {} -h 127.0.0.1 -k {} -F", self.port, self.dir.display());
        let log = self.dir.join("log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// initdb refuses to run as root: run the tools as `postgres` then.
    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args);
        command
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let status = self
            .command(tool, args)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(status.success(), "{tool} {args:?} failed: {status}");
    }

    fn chown_to_postgres_if_root(&self) {
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_bin_dir() -> PathBuf {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (initdb, pg_ctl) are needed: install postgresql")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| Path::new(bin).join("initdb").exists())
        .collect();
    candidates.sort();
    candidates
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}
