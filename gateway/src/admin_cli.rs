//! `corelay admin ...`: the admin API from a terminal, against a running
//! gateway (`--url`, default `http://127.0.0.1:8080`, or `CORELAY_URL`),
//! with its token (`--token` or `CORELAY_ADMIN_TOKEN`). Answers print as
//! tables, or as the API's JSON with `--json`.
//!
//! A plain blocking HTTP/1.1 client on `std::net`: the CLI runs one call and
//! exits, on no shard.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

/// How long a call may take.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// Where the gateway is and how to reach it.
pub struct Target {
    /// `host:port`.
    pub authority: String,
    pub token: String,
}

impl Target {
    /// From `--url` (`http://host:port`) and the token.
    pub fn new(url: &str, token: String) -> Result<Target, String> {
        let authority = url
            .strip_prefix("http://")
            .ok_or("--url must be http://HOST:PORT (corelay listens on plain HTTP)")?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err("--url must be http://HOST:PORT".into());
        }
        if token.is_empty() {
            return Err("no admin token: pass --token or set CORELAY_ADMIN_TOKEN".into());
        }
        Ok(Target { authority: authority.to_owned(), token })
    }

    /// One call: (status, body).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, Vec<u8>), String> {
        let mut stream =
            TcpStream::connect(&self.authority).map_err(|e| format!("cannot reach {}: {e}", self.authority))?;
        let timeout = Some(Duration::from_millis(CALL_TIMEOUT_MS));
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.authority,
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(|e| format!("cannot send: {e}"))?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(|e| format!("cannot read the answer: {e}"))?;
        parse_response(&answer)
    }
}

/// Status and body of a whole HTTP/1.1 answer (content-length or chunked).
fn parse_response(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or("an answer without a head")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("an answer without a status")?;
    let body = &answer[end + 4..];
    let chunked =
        head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("a cut chunked answer")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
            .map_err(|_| "a bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        out.extend_from_slice(rest.get(..size).ok_or("a cut chunk")?);
        rest = rest.get(size + 2..).ok_or("a cut chunk")?;
    }
}

/// Prints an answer: its JSON as it came (`json`), or a table; an error
/// answer becomes the returned error.
pub fn print(status: u16, body: &[u8], json: bool, out: &mut impl Write) -> Result<(), String> {
    let value: sonic_rs::Value =
        sonic_rs::from_slice(body).map_err(|_| format!("status {status}: {}", String::from_utf8_lossy(body)))?;
    if status >= 400 {
        let message = value["error"]["message"].as_str().unwrap_or("(no message)");
        return Err(format!("{status}: {message}"));
    }
    if json {
        let _ = writeln!(out, "{}", String::from_utf8_lossy(body));
        return Ok(());
    }
    if let Some(status) = value["status"].as_str() {
        let _ = writeln!(out, "{status}");
        return Ok(());
    }
    if let Some(secret) = value["key"].as_str() {
        let _ = writeln!(out, "key created; its secret is shown this once:\n  {secret}\n");
    }
    let rows: Vec<&sonic_rs::Value> = match value["data"].as_array() {
        Some(list) => list.iter().collect(),
        None => vec![&value],
    };
    let is_usage = rows.first().is_some_and(|r| r.get("requests").is_some()) || value.get("total").is_some();
    let columns: &[&str] = if is_usage {
        &["key", "model", "hour_unix", "requests", "prompt_tokens", "completion_tokens", "cost_usd"]
    } else {
        &["id", "name", "source", "models", "rpm", "tpm", "budget_usd", "budget_period", "expires_at", "revoked"]
    };
    let cell = |row: &sonic_rs::Value, column: &str| -> String {
        let v = &row[column];
        if let Some(s) = v.as_str() {
            s.to_owned()
        } else if let Some(list) = v.as_array() {
            list.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join(",")
        } else if v.is_null() {
            "-".to_owned()
        } else {
            v.to_string()
        }
    };
    let table: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| cell(r, c)).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| table.iter().map(|r| r[i].len()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(columns.iter().map(|c| (*c).to_owned()).collect()));
    for row in table {
        let _ = writeln!(out, "{}", line(row));
    }
    if is_usage && value.get("total").is_some() {
        let total = &value["total"];
        let _ = writeln!(
            out,
            "total: {} requests, {} prompt and {} completion tokens, {} USD",
            total["requests"], total["prompt_tokens"], total["completion_tokens"], total["cost_usd"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_with_either_framing() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Ok((201, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok((200, b"{\"a\":1}".to_vec())));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn keys_print_as_a_table_and_errors_as_errors() {
        let body = br#"{"object":"list","data":[{"id":"key_1","name":"team","source":"admin","models":["m","n"],"rpm":5,"tpm":null,"budget_usd":null,"budget_period":null,"expires_at":null,"revoked":false}]}"#;
        let mut out = Vec::new();
        print(200, body, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("id     name  source"), "{text}");
        assert!(text.contains("key_1  team  admin   m,n     5"), "{text}");
        let error =
            br#"{"error":{"message":"no key `x`","type":"invalid_request_error","param":null,"code":"key_not_found"}}"#;
        assert_eq!(print(404, error, false, &mut Vec::new()), Err("404: no key `x`".to_owned()));
        assert!(Target::new("https://x", "t".into()).is_err());
        assert!(Target::new("http://127.0.0.1:8080/", "t".into()).is_ok());
        assert!(Target::new("http://127.0.0.1:8080", String::new()).is_err());
    }
}
