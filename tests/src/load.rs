//! The benchmarks' load client: HTTP/1.1 keep-alive on one connection per thread, the request
//! written in one piece, the answer read by its `Content-Length`, and nothing parsed but its
//! status line and headers. It runs on the machine it measures, so every microsecond it spends
//! is taken from the daemon: a typed client (`lemur-client`: serde both ways, ureq's pool)
//! took about a tenth of the machine at 16 connections. What an answer must hold is checked by
//! the caller on its bytes.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a connection may take to open, as `lemur-client` allows.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may take to send or its answer to come, as `lemur-client` allows: a
/// daemon that stops answering fails the request rather than hanging the benchmark.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A daemon's API, with a bearer token.
pub struct LoadClient {
    /// `host:port`, from the daemon's `http://` base.
    authority: String,
    token: String,
}

/// An answer: its status and body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as sent.
    pub body: Vec<u8>,
}

impl Answer {
    /// Whether the status is `status` and the body (UTF-8) contains `needle`.
    pub fn is(&self, status: u16, needle: &str) -> bool {
        self.status == status
            && std::str::from_utf8(&self.body).is_ok_and(|body| body.contains(needle))
    }
}

thread_local! {
    /// This thread's connection and the daemon it goes to.
    static CONNECTION: RefCell<Option<(String, BufReader<TcpStream>)>> = const { RefCell::new(None) };
}

impl LoadClient {
    /// A client of the daemon at `base` (`http://127.0.0.1:PORT`), sending `token`.
    pub fn new(base: &str, token: &str) -> Self {
        let authority = base
            .strip_prefix("http://")
            .expect("the load client speaks plain HTTP")
            .trim_end_matches('/')
            .to_owned();
        Self {
            authority,
            token: token.to_owned(),
        }
    }

    /// `POST /api/1{path}` with the JSON `body`, on this thread's connection (made on first use,
    /// and again after a failure or an answer that closes it).
    pub fn post(&self, path: &str, body: &str) -> std::io::Result<Answer> {
        self.send(&format!(
            "POST /api/1{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.authority,
            self.token,
            body.len()
        ))
    }

    /// `GET /api/1{path}`, on this thread's connection, as [`Self::post`].
    pub fn get(&self, path: &str) -> std::io::Result<Answer> {
        self.send(&format!(
            "GET /api/1{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.authority, self.token,
        ))
    }

    /// Sends `request` on this thread's connection, made on first use and again after a
    /// failure or an answer that closes it.
    fn send(&self, request: &str) -> std::io::Result<Answer> {
        CONNECTION.with_borrow_mut(|slot| {
            let connection = match slot {
                Some((to, connection)) if *to == self.authority => connection,
                _ => {
                    let stream = connect(&self.authority)?;
                    &mut slot
                        .insert((self.authority.clone(), BufReader::new(stream)))
                        .1
                }
            };
            let outcome = exchange(connection, request.as_bytes());
            if !matches!(outcome, Ok((_, true))) {
                *slot = None;
            }
            outcome.map(|(answer, _)| answer)
        })
    }
}

/// A connection to `authority`, with the timeouts above and without Nagle's delay.
fn connect(authority: &str) -> std::io::Result<TcpStream> {
    let address = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("no address for {authority}")))?;
    let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes `request` and reads its answer; whether the connection may carry another.
fn exchange(
    connection: &mut BufReader<TcpStream>,
    request: &[u8],
) -> std::io::Result<(Answer, bool)> {
    connection.get_mut().write_all(request)?;
    let mut line = String::new();
    read_line(connection, &mut line)?;
    let status = line
        .trim_end()
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP/1.1 status line: {line:?}")))?;
    let (mut length, mut keep_alive) = (None, true);
    loop {
        line.clear();
        read_line(connection, &mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| invalid(format!("not a header: {header:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(invalid)?);
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value
                .split(',')
                .any(|option| option.trim().eq_ignore_ascii_case("close"));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                "a chunked answer: the load client reads Content-Length only",
            ));
        }
    }
    let mut body = vec![0; length.ok_or_else(|| invalid("an answer without Content-Length"))?];
    connection.read_exact(&mut body)?;
    Ok((Answer { status, body }, keep_alive))
}

/// One line of the answer's head into `line`; an error when the connection ends first.
fn read_line(connection: &mut BufReader<TcpStream>, line: &mut String) -> std::io::Result<()> {
    match connection.read_line(line)? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error)
}
