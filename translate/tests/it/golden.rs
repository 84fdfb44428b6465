//! Golden-file tests: every file under `translate/test_data/<from>_to_<to>/`
//! is an input in dialect `<from>`; its translation into `<to>` must equal
//! the file beside it with the `.expected` extension.
//!
//! The kind of input is in its name:
//! - `<case>.request.json`: a client request, written for the provider;
//! - `<case>.response.json`: a provider's non-streamed answer, written for
//!   the client;
//! - `<case>.stream.sse`: a provider's stream, written for the client. The
//!   translator is fed the transcript in cuts of 1, 7 and all bytes, and
//!   every cut must give the same output, so events split across reads are
//!   covered everywhere;
//! - `<case>.stream.frames.json`: a Bedrock stream, as a JSON array of
//!   frames `{"headers": {name: string value, ...}, "payload": JSON}` (a
//!   string payload is sent as its text). The test encodes them into real
//!   event-stream frames, CRCs included, and feeds them like an SSE
//!   transcript; `"cut_bytes": N` drops a frame's last N bytes;
//! - `<case>.error.json`: a provider's error body; its first line is the
//!   HTTP status;
//! - `<case>.embeddings.request.json`: an OpenAI `/v1/embeddings` body,
//!   written for the provider as one `POST <path>` and body per upstream
//!   call (Bedrock's model, and so Titan or Cohere, from `# model=ID`);
//! - `<case>.embeddings.response.json`: a JSON array of the provider's
//!   embeddings answers, one per call (a string element is sent as its
//!   text), collected into one OpenAI answer. `# inputs=N` is the number of
//!   inputs of the request (1 unless told), `# encoding=base64` the
//!   client's `encoding_format`, `# model=ID` the Bedrock model.
//!
//! Leading lines starting with `#` are options: `# json_tool`,
//! `# include_usage`, `# max_tokens_default=N`, `# max_tokens_field`,
//! `# no_stream_usage` (an OpenAI-dialect provider without
//! `stream_options`, like Azure's dated API versions),
//! `# thinking_level` (Gemini 3's `thinkingLevel` instead of a budget).
//! `# model=ID` (the provider's model; Bedrock requests start with their
//! path), `# error_type=VALUE` (Bedrock's `x-amzn-errortype` header).
//! A translation that fails is written as `ERROR <param>: <message>`.
//! `UPDATE_EXPECT=1 cargo test -p translate` rewrites the expectations;
//! review their diff like code.

use std::path::{Path, PathBuf};

use translate::embeddings;
use translate::stream::{Context, Dialect, State, Translator};
use translate::{ResponseContext, Target, Written};

const MODEL: &str = "upstream-model";

#[test]
fn golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in sorted(&root) {
        let Some((from, to)) = pair(&dir) else { continue };
        for input in sorted(&dir) {
            let name = input.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".expected") {
                continue;
            }
            count += 1;
            let text = std::fs::read_to_string(&input).unwrap();
            let (options, body) = split_options(&text);
            let actual = run(&name, from, to, &options, body);
            let expected_path = expected_path(&input);
            if std::env::var_os("UPDATE_EXPECT").is_some() {
                std::fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != actual {
                failures.push(format!(
                    "{}\n--- expected\n{expected}\n--- actual\n{actual}",
                    input.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(count >= 1, "no golden files found under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} of {count} golden files differ (UPDATE_EXPECT=1 rewrites):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `test_data/COVERAGE.md` is documentation that must not rot: each
/// numbered input (case 1 or more) is named in a row of its directory, and
/// each file a row names exists there.
#[test]
fn every_numbered_golden_file_is_in_the_coverage_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let table = std::fs::read_to_string(root.join("COVERAGE.md")).unwrap();
    let mut problems = Vec::new();
    for dir in sorted(&root) {
        if pair(&dir).is_none() {
            continue;
        }
        let dir_name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let row_start = format!("| `{dir_name}` ");
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with(&row_start)).collect();
        let names: Vec<String> =
            sorted(&dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for name in names.iter().filter(|n| !n.ends_with(".expected")) {
            let case: u32 = name.get(..2).and_then(|d| d.parse().ok()).unwrap_or(0);
            let quoted = format!("`{name}`");
            if case >= 1 && !rows.iter().any(|r| r.contains(&quoted)) {
                problems.push(format!("{dir_name}/{name} is in no row of COVERAGE.md"));
            }
        }
        for row in &rows {
            for named in row.split('`').skip(1).step_by(2) {
                let is_file = named.ends_with(".json") || named.ends_with(".sse");
                if is_file && !named.contains('/') && !names.iter().any(|n| n == named) {
                    problems.push(format!("COVERAGE.md names {dir_name}/{named}, which does not exist"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn sorted(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    entries
}

fn dialect(name: &str) -> Option<Dialect> {
    match name {
        "openai" => Some(Dialect::OpenAi),
        "anthropic" => Some(Dialect::Anthropic),
        "gemini" => Some(Dialect::Gemini),
        "bedrock" => Some(Dialect::Bedrock),
        _ => None,
    }
}

fn pair(dir: &Path) -> Option<(Dialect, Dialect)> {
    let name = dir.file_name()?.to_str()?;
    let (from, to) = name.split_once("_to_")?;
    Some((dialect(from)?, dialect(to)?))
}

fn expected_path(input: &Path) -> PathBuf {
    let name = input.file_name().unwrap().to_string_lossy();
    let stem = match name.strip_suffix(".frames.json") {
        Some(stem) => stem,
        None => name.rsplit_once('.').map_or(&*name, |(s, _)| s),
    };
    input.with_file_name(format!("{stem}.expected"))
}

fn split_options(text: &str) -> (Vec<String>, &str) {
    let mut options = Vec::new();
    let mut rest = text;
    while let Some(line) = rest.strip_prefix('#') {
        let (line, tail) = line.split_once('\n').unwrap_or((line, ""));
        options.push(line.trim().to_owned());
        rest = tail;
    }
    (options, rest)
}

fn has(options: &[String], name: &str) -> bool {
    options.iter().any(|o| o == name)
}

fn option_u64(options: &[String], name: &str) -> Option<u64> {
    option_str(options, name)?.parse().ok()
}

fn option_str<'o>(options: &'o [String], name: &str) -> Option<&'o str> {
    options.iter().find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
}

/// Encodes a `.stream.frames.json` transcript as event-stream bytes
/// (`bedrock.md` §5), every header a string (type 7).
fn frames(json: &str) -> Vec<u8> {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let list: sonic_rs::Value = sonic_rs::from_str(json).expect("frames file is not JSON");
    let mut bytes = Vec::new();
    for frame in list.as_array().expect("frames file must be an array").iter() {
        let mut headers = Vec::new();
        for (name, value) in frame.get("headers").and_then(|h| h.as_object()).expect("a frame needs headers").iter() {
            let value = value.as_str().expect("header values are strings");
            headers.push(u8::try_from(name.len()).unwrap());
            headers.extend_from_slice(name.as_bytes());
            headers.push(7);
            headers.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
            headers.extend_from_slice(value.as_bytes());
        }
        let payload = match frame.get("payload") {
            Some(p) if p.is_str() => p.as_str().unwrap().to_owned(),
            Some(p) => sonic_rs::to_string(p).unwrap(),
            None => String::new(),
        };
        let total = 16 + headers.len() + payload.len();
        let start = bytes.len();
        bytes.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
        bytes.extend_from_slice(&u32::try_from(headers.len()).unwrap().to_be_bytes());
        let prelude_crc = crc32fast::hash(&bytes[start..start + 8]);
        bytes.extend_from_slice(&prelude_crc.to_be_bytes());
        bytes.extend_from_slice(&headers);
        bytes.extend_from_slice(payload.as_bytes());
        let message_crc = crc32fast::hash(&bytes[start..]);
        bytes.extend_from_slice(&message_crc.to_be_bytes());
        let cut = frame.get("cut_bytes").and_then(|c| c.as_u64()).unwrap_or(0);
        bytes.truncate(bytes.len() - usize::try_from(cut).unwrap());
    }
    bytes
}

fn run(name: &str, from: Dialect, to: Dialect, options: &[String], body: &str) -> String {
    let written = Written { json_tool: has(options, "json_tool") };
    if name.ends_with(".embeddings.request.json") {
        embeddings_request(to, options, body)
    } else if name.ends_with(".embeddings.response.json") {
        embeddings_response(from, options, body)
    } else if name.ends_with(".request.json") {
        request(from, to, options, body)
    } else if name.ends_with(".response.json") {
        let cx = ResponseContext { id: "gen-1", model: MODEL, created: 1_700_000_000, written };
        let mut out = Vec::new();
        match translate::translate_response(from, body.as_bytes(), to, cx, &mut out) {
            Ok(usage) => format!("{}\nusage: {usage:?}\n", String::from_utf8(out).unwrap()),
            Err(e) => format!("ERROR {}: {e}\n", e.param().unwrap_or("-")),
        }
    } else if name.ends_with(".stream.sse") {
        stream(from, to, options, written, body.as_bytes())
    } else if name.ends_with(".stream.frames.json") {
        stream(from, to, options, written, &frames(body))
    } else if name.ends_with(".error.json") {
        let (status, body) = body.split_once('\n').unwrap();
        let status = status.trim().parse().unwrap();
        let error = match option_str(options, "error_type") {
            Some(header) => translate::bedrock::response::parse_error(status, body.as_bytes(), Some(header)),
            None => translate::parse_error(from, status, body.as_bytes()),
        };
        let mut out = Vec::new();
        let status = match to {
            Dialect::OpenAi => {
                error.write_openai(&mut out);
                error.kind.openai_status()
            }
            Dialect::Anthropic => {
                error.write_anthropic(&mut out);
                error.kind.anthropic_status()
            }
            Dialect::Gemini => panic!("{name}: no client speaks gemini"),
            Dialect::Bedrock => panic!("Bedrock is not a client dialect"),
        };
        format!("{status}\n{}\n", String::from_utf8(out).unwrap())
    } else {
        panic!("{name}: unknown kind of golden file");
    }
}

fn request(from: Dialect, to: Dialect, options: &[String], body: &str) -> String {
    let parsed = match translate::parse_request(from, body.as_bytes()) {
        Ok(r) => r,
        Err(e) => return format!("ERROR {}: {e}\n", e.param().unwrap_or("-")),
    };
    let target = match to {
        Dialect::OpenAi => Target::OpenAi(translate::openai::request::Flavor {
            max_completion_tokens: !has(options, "max_tokens_field"),
            stream_usage: !has(options, "no_stream_usage"),
        }),
        Dialect::Anthropic => Target::Anthropic(translate::anthropic::request::Options {
            max_tokens_default: option_u64(options, "max_tokens_default").unwrap_or(4096),
        }),
        Dialect::Gemini => Target::Gemini(translate::gemini::request::Options {
            thinking: if has(options, "thinking_level") {
                translate::gemini::request::Thinking::Level
            } else {
                translate::gemini::request::Thinking::Budget
            },
        }),
        Dialect::Bedrock => Target::Bedrock(translate::bedrock::request::Options {
            max_tokens_default: option_u64(options, "max_tokens_default"),
        }),
    };
    let model = option_str(options, "model").unwrap_or(MODEL);
    let mut out = Vec::new();
    match translate::write_request(&parsed, target, model, &mut out) {
        Ok(written) => {
            let text = String::from_utf8(out).unwrap();
            // The output must be JSON; pretty-printed so diffs are readable.
            let value: sonic_rs::Value = sonic_rs::from_str(&text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"));
            let path = match to {
                Dialect::Bedrock => format!("POST {}\n", translate::bedrock::path(model, parsed.stream)),
                _ => String::new(),
            };
            format!("{path}{}\n{written:?}\n", sonic_rs::to_string_pretty(&value).unwrap())
        }
        Err(e) => format!("ERROR {}: {e}\n", e.param().unwrap_or("-")),
    }
}

fn embeddings_target(dialect: Dialect, model: &str) -> Result<embeddings::Target, translate::error::Error> {
    match dialect {
        Dialect::Gemini => Ok(embeddings::Target::Gemini),
        Dialect::Bedrock => embeddings::Target::bedrock(model),
        Dialect::OpenAi | Dialect::Anthropic => panic!("embeddings are translated for Gemini and Bedrock only"),
    }
}

fn error_line(e: &translate::error::Error) -> String {
    format!("ERROR {}: {e}\n", e.param().unwrap_or("-"))
}

fn embeddings_request(to: Dialect, options: &[String], body: &str) -> String {
    let request = match embeddings::parse_openai(body.as_bytes()) {
        Ok(r) => r,
        Err(e) => return error_line(&e),
    };
    let model = option_str(options, "model").unwrap_or(MODEL);
    let target = match embeddings_target(to, model) {
        Ok(t) => t,
        Err(e) => return error_line(&e),
    };
    let mut text = String::new();
    for call in 0..target.calls(request.inputs.len()) {
        let mut out = Vec::new();
        if let Err(e) = target.write(&request, model, call, &mut out) {
            return text + &error_line(&e);
        }
        let json = String::from_utf8(out).unwrap();
        let value: sonic_rs::Value = sonic_rs::from_str(&json).unwrap_or_else(|e| panic!("not JSON: {e}\n{json}"));
        text += &format!("POST {}\n{}\n", target.path(model), sonic_rs::to_string_pretty(&value).unwrap());
    }
    text + &format!("encoding: {:?}, user: {:?}\n", request.encoding, request.user)
}

fn embeddings_response(from: Dialect, options: &[String], body: &str) -> String {
    use sonic_rs::JsonValueTrait;
    let target = embeddings_target(from, option_str(options, "model").unwrap_or(MODEL)).unwrap();
    let inputs = usize::try_from(option_u64(options, "inputs").unwrap_or(1)).unwrap();
    let encoding = match option_str(options, "encoding") {
        Some("base64") => embeddings::Encoding::Base64,
        _ => embeddings::Encoding::Float,
    };
    let mut collected = embeddings::Collected::new(target, inputs, encoding);
    for answer in sonic_rs::to_array_iter(body) {
        let answer = answer.expect("an embeddings answers file is a JSON array");
        let bytes = match answer.as_str() {
            Some(text) => text.as_bytes().to_vec(),
            None => answer.as_raw_str().as_bytes().to_vec(),
        };
        if let Err(e) = collected.add(&bytes) {
            return error_line(&e);
        }
    }
    let mut out = Vec::new();
    match collected.finish(MODEL, &mut out) {
        Ok(usage) => {
            let text = String::from_utf8(out).unwrap();
            sonic_rs::from_str::<sonic_rs::Value>(&text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"));
            format!("{text}\nusage: {usage:?}\n")
        }
        Err(e) => error_line(&e),
    }
}

fn stream(from: Dialect, to: Dialect, options: &[String], written: Written, body: &[u8]) -> String {
    let cx = Context {
        id: "gen-1".into(),
        model: MODEL.into(),
        created: 1_700_000_000,
        include_usage: has(options, "include_usage"),
        json_tool: written.json_tool,
    };
    let mut outputs = Vec::new();
    for cut in [1, 7, body.len().max(1)] {
        let mut translator = Translator::new(from, to, cx.clone());
        let mut out = Vec::new();
        for piece in body.chunks(cut) {
            translator.feed(piece, &mut out);
        }
        let state = translator.end(&mut out);
        outputs.push(format!("{}state: {state:?}\nusage: {:?}\n", String::from_utf8(out).unwrap(), translator.usage()));
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "output depends on how the input is cut:\n{}",
        outputs.join("\n=====\n")
    );
    let _ = State::Open;
    outputs.pop().unwrap()
}
