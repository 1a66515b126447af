//! A real SMTP server for tests, in-process on tokio: lettre talks to it over
//! TCP exactly as it would to a relay, and the tests read what arrived.
//! Enabled by the `test-support` feature; never part of a production build.
//!
//! It speaks what lettre needs (EHLO/HELO, AUTH PLAIN/LOGIN accepting any
//! credentials, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and nothing more: no TLS,
//! no size enforcement, no pipelining.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_parser::MessageParser;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// One message as the sink received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as transmitted (headers and body, dot-stuffing undone).
    pub raw: String,
}

impl ReceivedMail {
    fn parsed(&self) -> Option<mail_parser::Message<'_>> {
        MessageParser::default().parse(self.raw.as_bytes())
    }

    /// The decoded subject (RFC 2047 words joined); empty when absent.
    pub fn subject(&self) -> String {
        self.parsed()
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The decoded `text/plain` body; empty when absent.
    pub fn text_body(&self) -> String {
        self.parsed()
            .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
            .unwrap_or_default()
    }

    /// The decoded `text/html` body; empty when absent.
    pub fn html_body(&self) -> String {
        self.parsed()
            .and_then(|m| m.body_html(0).map(|b| b.into_owned()))
            .unwrap_or_default()
    }

    /// A top-level header: its decoded text for unstructured headers, else
    /// the raw value (unfolded, trimmed). Names are case-insensitive.
    pub fn header(&self, name: &str) -> Option<String> {
        let message = self.parsed()?;
        if let Some(text) = message.header(name).and_then(|v| v.as_text()) {
            return Some(text.trim().to_owned());
        }
        let raw = message.header_raw(name)?;
        Some(
            raw.split(['\r', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn is_to(&self, recipient: &str) -> bool {
        self.to
            .iter()
            .any(|to| to.eq_ignore_ascii_case(recipient.trim()))
    }
}

/// The first standalone 6-digit number in `text` (not part of a longer
/// number or a word): the verification code in a rendered mail.
pub fn six_digit_code(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let bounded_before = start == 0 || !chars[start - 1].is_alphanumeric();
        let bounded_after = i == chars.len() || !chars[i].is_alphanumeric();
        if i - start == 6 && bounded_before && bounded_after {
            return Some(chars[start..i].iter().collect());
        }
    }
    None
}

#[derive(Default)]
struct SinkState {
    messages: Mutex<Vec<ReceivedMail>>,
    auth_users: Mutex<Vec<String>>,
    arrived: Notify,
}

/// A panicking test thread must not make every later assertion fail with a
/// poisoned lock instead of its own message.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The SMTP server. Stops when dropped.
pub struct SmtpSink {
    port: u16,
    state: Arc<SinkState>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> SmtpSink {
        Self::start_on(0).await
    }

    /// Listens on 127.0.0.1:`port` (0 for any free port). Panics when the port
    /// is taken: a test that needs it cannot go on.
    pub async fn start_on(port: u16) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("SMTP sink cannot listen on 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().expect("listener address").port();
        let state = Arc::new(SinkState::default());
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        SmtpSink {
            port,
            state,
            accept: Mutex::new(Some(accept)),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops listening and drops every open connection: afterwards, connecting
    /// to the port is refused. What was received stays readable.
    pub async fn stop(&self) {
        let accept = lock(&self.accept).take();
        if let Some(accept) = accept {
            accept.abort();
            // Returns once the task (the listener and the set of connection
            // tasks, which aborts them all) has been dropped.
            let _ = accept.await;
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.state.messages).clone()
    }

    /// How many messages were received for `recipient` (case-insensitive).
    pub fn count_to(&self, recipient: &str) -> usize {
        lock(&self.state.messages)
            .iter()
            .filter(|m| m.is_to(recipient))
            .count()
    }

    /// User names given with AUTH, in order (passwords are not kept).
    pub fn auth_users(&self) -> Vec<String> {
        lock(&self.state.auth_users).clone()
    }

    fn newest_to(&self, recipient: &str) -> Option<ReceivedMail> {
        lock(&self.state.messages)
            .iter()
            .rev()
            .find(|m| m.is_to(recipient))
            .cloned()
    }

    /// The newest message to `recipient`, waiting up to `timeout` for one to
    /// arrive if there is none yet.
    pub async fn wait_for(&self, recipient: &str, timeout: Duration) -> Option<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a message stored in between still wakes us.
            let arrived = self.state.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(mail) = self.newest_to(recipient) {
                return Some(mail);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.newest_to(recipient);
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<SinkState>) {
    // Owned here so that aborting this task drops (and so aborts) every
    // connection task with it.
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    sessions.spawn(session(stream, Arc::clone(&state)));
                }
                // E.g. too many open files: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished sessions so the set does not grow without bound.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// One line without its CRLF; None at end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b`.
fn path_argument(arg: &str) -> String {
    let after_colon = arg.split_once(':').map_or(arg, |(_, rest)| rest).trim();
    match (after_colon.find('<'), after_colon.find('>')) {
        (Some(open), Some(close)) if open < close => after_colon[open + 1..close].to_owned(),
        _ => after_colon
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn decode_base64(s: &str) -> Option<String> {
    BASE64
        .decode(s.trim())
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Runs an AUTH exchange; the user name, or None when the client's answer
/// could not be decoded (the password is read and ignored).
async fn authenticate<R, W>(
    arg: &str,
    reader: &mut R,
    writer: &mut W,
) -> std::io::Result<Option<String>>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut parts = arg.split_whitespace();
    let mechanism = parts.next().unwrap_or_default().to_ascii_uppercase();
    let initial = parts.next().map(str::to_owned);
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(response) => response,
                None => {
                    writer.write_all(b"334 \r\n").await?;
                    read_line(reader).await?.unwrap_or_default()
                }
            };
            // authzid NUL authcid NUL password
            Ok(decode_base64(&response)
                .and_then(|plain| plain.split('\0').nth(1).map(str::to_owned)))
        }
        "LOGIN" => {
            let user = match initial {
                Some(user) => user,
                None => {
                    writer.write_all(b"334 VXNlcm5hbWU6\r\n").await?; // "Username:"
                    read_line(reader).await?.unwrap_or_default()
                }
            };
            writer.write_all(b"334 UGFzc3dvcmQ6\r\n").await?; // "Password:"
            let _password = read_line(reader).await?;
            Ok(decode_base64(&user))
        }
        _ => Ok(None),
    }
}

async fn session(stream: TcpStream, state: Arc<SinkState>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer
        .write_all(b"220 localhost ESMTP test sink\r\n")
        .await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader).await? {
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 10485760\r\n250 AUTH PLAIN LOGIN\r\n",
            "HELO" => b"250 localhost\r\n",
            "AUTH" => match authenticate(arg, &mut reader, &mut writer).await? {
                Some(user) => {
                    lock(&state.auth_users).push(user);
                    b"235 2.7.0 Authentication successful\r\n"
                }
                None => b"535 5.7.8 Authentication credentials invalid\r\n",
            },
            "MAIL" => {
                from = Some(path_argument(arg));
                to.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if from.is_none() => b"503 5.5.1 MAIL first\r\n",
            "RCPT" => {
                to.push(path_argument(arg));
                b"250 2.1.5 OK\r\n"
            }
            "DATA" if to.is_empty() => b"503 5.5.1 RCPT first\r\n",
            "DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut raw = Vec::new();
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(()); // client went away mid-message: nothing delivered
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-stuffing: the client doubled every leading dot.
                    let line = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    raw.extend_from_slice(line);
                }
                let mail = ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                };
                lock(&state.messages).push(mail);
                state.arrived.notify_waiters();
                b"250 2.0.0 OK queued\r\n"
            }
            "RSET" => {
                from = None;
                to.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        writer.write_all(reply).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_standalone_six_digit_codes() {
        assert_eq!(six_digit_code("인증 코드: 482913\n"), Some("482913".into()));
        assert_eq!(
            six_digit_code("code 1234567 then 654321."),
            Some("654321".into())
        );
        assert_eq!(six_digit_code("12345 and 123456"), Some("123456".into()));
        assert_eq!(six_digit_code("abc123456 x"), None);
        assert_eq!(six_digit_code("<p>000042</p>"), Some("000042".into()));
        assert_eq!(six_digit_code("no code"), None);
        assert_eq!(six_digit_code("10분 동안"), None);
    }

    #[test]
    fn envelope_paths() {
        assert_eq!(path_argument("FROM:<a@b.c> BODY=8BITMIME"), "a@b.c");
        assert_eq!(path_argument("TO: <x@y.z>"), "x@y.z");
        assert_eq!(path_argument("FROM:<>"), "");
        assert_eq!(path_argument("TO:bare@host"), "bare@host");
    }

    /// The sink also works with a hand-written client, independent of lettre:
    /// dot-stuffing is undone, RSET forgets the envelope, AUTH LOGIN records
    /// the user, and after `stop` the port refuses connections.
    #[tokio::test]
    async fn speaks_smtp_and_stops() {
        let sink = SmtpSink::start().await;
        let stream = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let mut expect = async |code: &str| {
            let line = read_line(&mut reader).await.unwrap().unwrap();
            assert!(line.starts_with(code), "expected {code}, got {line}");
            line
        };
        expect("220").await;
        writer.write_all(b"EHLO me\r\n").await.unwrap();
        while expect("250").await.starts_with("250-") {}
        writer.write_all(b"AUTH LOGIN\r\n").await.unwrap();
        expect("334").await;
        writer
            .write_all(format!("{}\r\n", BASE64.encode("alice")).as_bytes())
            .await
            .unwrap();
        expect("334").await;
        writer
            .write_all(format!("{}\r\n", BASE64.encode("pw")).as_bytes())
            .await
            .unwrap();
        expect("235").await;
        writer
            .write_all(b"RCPT TO:<early@example.com>\r\n")
            .await
            .unwrap();
        expect("503").await;
        writer
            .write_all(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<dropped@example.com>\r\nRSET\r\n")
            .await
            .unwrap();
        expect("250").await;
        expect("250").await;
        expect("250").await;
        writer
            .write_all(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<B@Example.com>\r\nDATA\r\n")
            .await
            .unwrap();
        expect("250").await;
        expect("250").await;
        expect("354").await;
        writer
            .write_all(b"Subject: hi\r\n\r\n..leading dot\r\nline two\r\n.\r\nQUIT\r\n")
            .await
            .unwrap();
        expect("250").await;
        expect("221").await;

        let mail = sink
            .wait_for("b@example.com", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(mail.from, "a@example.com");
        assert_eq!(mail.to, vec!["B@Example.com".to_owned()]);
        assert_eq!(mail.raw, "Subject: hi\r\n\r\n.leading dot\r\nline two\r\n");
        assert_eq!(mail.subject(), "hi");
        assert_eq!(sink.count_to("dropped@example.com"), 0);
        assert_eq!(sink.auth_users(), vec!["alice".to_owned()]);
        assert!(
            sink.wait_for("nobody@example.com", Duration::from_millis(50))
                .await
                .is_none()
        );

        sink.stop().await;
        assert!(
            TcpStream::connect(("127.0.0.1", sink.port()))
                .await
                .is_err()
        );
        assert_eq!(sink.messages().len(), 1);
    }
}
