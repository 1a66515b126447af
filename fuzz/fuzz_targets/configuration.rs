//! Configuration from the environment (`KEY=value` lines) and from a TOML
//! file: any input is either settings or one clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = auth_server::Settings::load(None, env);

    let file = std::env::temp_dir().join(format!("auth-fuzz-config-{}.toml", std::process::id()));
    if std::fs::write(&file, text).is_ok() {
        let _ = auth_server::Settings::load(Some(&file), Vec::new());
    }
});
