//! OpenAI `/v1/embeddings` requests, served by Gemini (`batchEmbedContents`)
//! or by Bedrock's Titan and Cohere embedding models (`InvokeModel`).
//!
//! One client request may take several upstream calls, so the gateway drives
//! a small loop (case 37 of `shared/providers/README.md`):
//! 1. [`parse_openai`] the client's body once, and pick the [`Target`]
//!    ([`Target::Gemini`], or [`Target::bedrock`] from the model id);
//! 2. make a [`Collected`] for the answers;
//! 3. for each call in `0..target.calls(inputs)`: [`Target::write`] the
//!    body, send it to [`Target::path`], and [`Collected::add`] the answer
//!    (a provider error status is the gateway's to map, as for chat);
//! 4. [`Collected::finish`] writes the OpenAI answer and gives the usage.
//!
//! A refused request fails at the first `write`, before anything is sent.
//! The per-provider writers and readers ([`write_gemini`], [`write_titan`],
//! [`write_cohere`], [`read_gemini`], [`read_titan`], [`read_cohere`],
//! [`write_openai`]) are public for callers that need only one piece.
//!
//! Policies, where the APIs disagree (each is a test in `test_data`):
//! - `input` is a string or an array of 1 to [`EMBEDDING_INPUTS_MAX`]
//!   non-empty strings. Token arrays (numbers, arrays of numbers) are a 400:
//!   no provider behind translation reads tokens, and their tokenizer is not
//!   OpenAI's. The strings are copied raw, escapes and all.
//! - `encoding_format` is `float` (the default) or `base64`; anything else is
//!   a 400. Providers are always asked for floats; base64 is made here, as
//!   OpenAI makes it: each number as a little-endian `f32`, the bytes in
//!   standard base64 with padding. For `float` the provider's number text is
//!   kept as it is (whitespace dropped), never re-printed.
//! - `dimensions` (at least 1): Gemini's `outputDimensionality`, sent as
//!   asked. Gemini does not normalise vectors it shortens (OpenAI does); they
//!   pass as Gemini returns them. Titan V2 takes 256, 512 or 1024
//!   ([`TITAN_V2_DIMENSIONS`]), Titan V1 none, and Cohere's v3 models have
//!   fixed sizes: anything else is a 400 naming `dimensions`, rather than a
//!   vector of a size the client did not ask for.
//! - Titan V2 is sent `normalize: true`, since OpenAI's vectors have length
//!   1; Titan V1 is sent `inputText` alone, the only field it takes.
//! - Cohere is sent `input_type: search_document` (OpenAI has no notion of
//!   query or document; this is the usual convention) and
//!   `embedding_types: ["float"]`; both of its answer shapes are read.
//! - Calls: Gemini takes up to [`GEMINI_BATCH_REQUESTS_MAX`] inputs per
//!   call, Cohere [`COHERE_TEXTS_MAX`], Titan one. Vectors come back in
//!   input order, `index` counting from 0 across calls.
//! - `user` is read and not sent: none of these providers has it. Nor is
//!   Gemini's `taskType`: OpenAI has no such notion, and Gemini's default
//!   applies.
//! - Usage: Titan's `inputTextTokenCount`, summed over the calls; Cohere's
//!   `meta.billed_units.input_tokens` when it is there; Gemini reports no
//!   tokens, so its usage is 0 (an estimate would be a guess at Google's
//!   tokenizer). A count that is not a whole number is read as 0.
//! - An answer that does not parse, holds something other than arrays of
//!   numbers, or has the wrong number of vectors is [`Error::Provider`].
//! - Ollama is not here: its `/v1/embeddings` speaks OpenAI's dialect, so
//!   the body passes through.

use std::ops::Range;

use serde::Deserialize;

use crate::Usage;
use crate::error::{Error, first_line};
use crate::raw::{Raw, write_json_string};

/// The most inputs in one request: OpenAI's own cap.
pub const EMBEDDING_INPUTS_MAX: usize = 2048;

/// The most texts in one Cohere call (`bedrock.md` §9; Cohere's documented
/// cap, unverified for Bedrock).
pub const COHERE_TEXTS_MAX: usize = 96;

/// The most requests in one Gemini `batchEmbedContents` call (Google's
/// API refuses more; not in `gemini.md`, unverified for newer models).
pub const GEMINI_BATCH_REQUESTS_MAX: usize = 100;

/// The sizes Titan Text Embeddings V2 makes.
pub const TITAN_V2_DIMENSIONS: [u64; 3] = [256, 512, 1024];

/// How the client wants each vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// A base64 string of little-endian `f32`s.
    Base64,
}

/// A client's embeddings request. Strings are raw slices of its body.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The JSON string literal of `model`.
    pub model: Raw<'a>,
    /// JSON string literals, none empty, at least one.
    pub inputs: Vec<Raw<'a>>,
    pub dimensions: Option<u64>,
    pub encoding: Encoding,
    pub user: Option<Raw<'a>>,
}

/// Which Titan: what its body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Titan {
    /// `amazon.titan-embed-text-v1`: `inputText` only.
    V1,
    /// `amazon.titan-embed-text-v2:0`: `dimensions` and `normalize` too.
    V2,
}

/// The kind of a Bedrock embedding model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockEmbed {
    /// Amazon Titan Text Embeddings: one input per call.
    Titan(Titan),
    /// Cohere Embed: up to [`COHERE_TEXTS_MAX`] inputs per call.
    Cohere,
}

/// Where an embeddings request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Gemini's `batchEmbedContents`; the model is in the path.
    Gemini,
    /// Bedrock's `InvokeModel`; the model is in the path.
    Bedrock(BedrockEmbed),
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(borrow, default)]
    input: Option<Raw<'a>>,
    #[serde(borrow, default)]
    encoding_format: Option<Raw<'a>>,
    #[serde(borrow, default)]
    dimensions: Option<Raw<'a>>,
    #[serde(borrow, default)]
    user: Option<Raw<'a>>,
}

/// Parses an OpenAI `/v1/embeddings` body.
pub fn parse_openai(body: &[u8]) -> Result<Request<'_>, Error> {
    let wire: Wire<'_> = crate::wire::from_slice(body).map_err(Error::json)?;
    let model =
        wire.model.filter(Raw::is_string).ok_or(Error::invalid("model", "missing required parameter: 'model'"))?;
    let input = wire.input.ok_or(Error::invalid("input", "missing required parameter: 'input'"))?;
    Ok(Request {
        model,
        inputs: parse_inputs(input)?,
        dimensions: parse_dimensions(wire.dimensions)?,
        encoding: parse_encoding(wire.encoding_format)?,
        user: wire.user.filter(Raw::is_string),
    })
}

fn parse_inputs(input: Raw<'_>) -> Result<Vec<Raw<'_>>, Error> {
    if input.is_string() {
        check_input(&input, None)?;
        return Ok(vec![input]);
    }
    if !input.is_array() {
        return Err(token_or_type_error(&input, None));
    }
    let text = input.as_borrowed().ok_or(Error::invalid("input", "'input' could not be read"))?;
    let items: Vec<Raw<'_>> = sonic_rs::from_str(text).map_err(Error::json)?;
    if items.is_empty() {
        return Err(Error::invalid("input", "'input' must not be an empty array"));
    }
    if items.len() > EMBEDDING_INPUTS_MAX {
        return Err(Error::invalid(
            "input",
            format!("'input' has {} items; at most {EMBEDDING_INPUTS_MAX} are allowed", items.len()),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        check_input(item, Some(i))?;
    }
    Ok(items)
}

/// One input: a non-empty string.
fn check_input(item: &Raw<'_>, index: Option<usize>) -> Result<(), Error> {
    if !item.is_string() {
        return Err(token_or_type_error(item, index));
    }
    if item.json() == "\"\"" {
        return Err(Error::invalid(input_param(index), "'input' must not contain empty strings"));
    }
    Ok(())
}

/// Numbers (or arrays of them) are tokens; anything else is the wrong type.
fn token_or_type_error(item: &Raw<'_>, index: Option<usize>) -> Error {
    let json = item.json();
    let tokens = json.starts_with(|c: char| c == '-' || c.is_ascii_digit()) || item.is_array();
    if tokens {
        Error::invalid("input", "token arrays are not supported for this model; send the text as strings")
    } else {
        Error::invalid(input_param(index), "'input' must be a string or an array of strings")
    }
}

fn input_param(index: Option<usize>) -> String {
    match index {
        Some(i) => format!("input[{i}]"),
        None => "input".to_owned(),
    }
}

fn parse_dimensions(dimensions: Option<Raw<'_>>) -> Result<Option<u64>, Error> {
    let Some(raw) = dimensions.filter(|d| !d.is_null()) else { return Ok(None) };
    match raw.as_u64() {
        Some(n) if n >= 1 => Ok(Some(n)),
        _ => Err(Error::invalid("dimensions", "'dimensions' must be an integer of at least 1")),
    }
}

fn parse_encoding(encoding: Option<Raw<'_>>) -> Result<Encoding, Error> {
    let Some(raw) = encoding.filter(|e| !e.is_null()) else { return Ok(Encoding::Float) };
    match raw.json() {
        "\"float\"" => Ok(Encoding::Float),
        "\"base64\"" => Ok(Encoding::Base64),
        _ => Err(Error::invalid("encoding_format", "'encoding_format' must be 'float' or 'base64'")),
    }
}

impl Target {
    /// The Bedrock target of a model id, or a 400 for a model that is not
    /// one of the embedding models corelay writes for.
    pub fn bedrock(model_id: &str) -> Result<Target, Error> {
        bedrock_flavor(model_id).map(Target::Bedrock).ok_or_else(|| {
            Error::invalid("model", format!("{model_id} is not a Titan or Cohere embeddings model on Bedrock"))
        })
    }

    /// The most inputs one call takes.
    pub fn batch_max(self) -> usize {
        match self {
            Target::Gemini => GEMINI_BATCH_REQUESTS_MAX,
            Target::Bedrock(BedrockEmbed::Titan(_)) => 1,
            Target::Bedrock(BedrockEmbed::Cohere) => COHERE_TEXTS_MAX,
        }
    }

    /// How many calls serve `inputs` inputs.
    pub fn calls(self, inputs: usize) -> usize {
        inputs.div_ceil(self.batch_max())
    }

    /// The inputs call number `call` carries (empty past the last call).
    pub fn inputs_of(self, call: usize, inputs: usize) -> Range<usize> {
        let batch = self.batch_max();
        let start = call.saturating_mul(batch).min(inputs);
        start..start.saturating_add(batch).min(inputs)
    }

    /// The path every call goes to, for the provider's model id.
    pub fn path(self, model: &str) -> String {
        match self {
            Target::Gemini => gemini_path(model),
            Target::Bedrock(_) => crate::bedrock::model_path(model, "invoke"),
        }
    }

    /// Writes the body of call number `call`, for the provider's model id.
    pub fn write(self, request: &Request<'_>, model: &str, call: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        let range = self.inputs_of(call, request.inputs.len());
        match self {
            Target::Gemini => write_gemini(request, model, range, out),
            Target::Bedrock(BedrockEmbed::Titan(titan)) => write_titan(request, titan, range.start, out),
            Target::Bedrock(BedrockEmbed::Cohere) => write_cohere(request, range, out),
        }
    }
}

/// `/v1beta/models/{model}:batchEmbedContents`, the model id encoded as by
/// [`crate::gemini::path`].
pub fn gemini_path(model: &str) -> String {
    let path = crate::gemini::path(model, false);
    match path.strip_suffix(":generateContent") {
        Some(base) => format!("{base}:batchEmbedContents"),
        None => path,
    }
}

/// The resource name every request of a batch repeats: `models/{model}`
/// (a `models/` or `tunedModels/` prefix is kept, as in the path).
fn gemini_model_name(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

/// Writes a `batchEmbedContents` body for the inputs in `range` (at most
/// [`GEMINI_BATCH_REQUESTS_MAX`] of them).
pub fn write_gemini(request: &Request<'_>, model: &str, range: Range<usize>, out: &mut Vec<u8>) -> Result<(), Error> {
    let inputs = request.inputs.get(range).filter(|i| !i.is_empty()).ok_or_else(no_such_inputs)?;
    let mut name = Vec::new();
    write_json_string(&mut name, &gemini_model_name(model));
    out.extend_from_slice(b"{\"requests\":[");
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"model\":");
        out.extend_from_slice(&name);
        out.extend_from_slice(b",\"content\":{\"parts\":[{\"text\":");
        out.extend_from_slice(input.json().as_bytes());
        out.extend_from_slice(b"}]}");
        if let Some(n) = request.dimensions {
            out.extend_from_slice(b",\"outputDimensionality\":");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

/// Writes a Titan body for input number `index`.
pub fn write_titan(request: &Request<'_>, titan: Titan, index: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    let input = request.inputs.get(index).ok_or_else(no_such_inputs)?;
    match (titan, request.dimensions) {
        (Titan::V1, Some(_)) => {
            return Err(Error::invalid(
                "dimensions",
                "this Titan model has a fixed size; 'dimensions' is not supported",
            ));
        }
        (Titan::V2, Some(n)) if !TITAN_V2_DIMENSIONS.contains(&n) => {
            return Err(Error::invalid("dimensions", "Titan V2 makes vectors of 256, 512 or 1024 dimensions only"));
        }
        _ => {}
    }
    out.extend_from_slice(b"{\"inputText\":");
    out.extend_from_slice(input.json().as_bytes());
    if titan == Titan::V2 {
        if let Some(n) = request.dimensions {
            out.extend_from_slice(b",\"dimensions\":");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
        out.extend_from_slice(b",\"normalize\":true");
    }
    out.push(b'}');
    Ok(())
}

/// Writes a Cohere body for the inputs in `range` (at most
/// [`COHERE_TEXTS_MAX`] of them).
pub fn write_cohere(request: &Request<'_>, range: Range<usize>, out: &mut Vec<u8>) -> Result<(), Error> {
    if request.dimensions.is_some() {
        return Err(Error::invalid("dimensions", "Cohere embedding models have a fixed size; remove 'dimensions'"));
    }
    let inputs = request.inputs.get(range).filter(|i| !i.is_empty()).ok_or_else(no_such_inputs)?;
    out.extend_from_slice(b"{\"texts\":[");
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(input.json().as_bytes());
    }
    out.extend_from_slice(b"],\"input_type\":\"search_document\",\"embedding_types\":[\"float\"]}");
    Ok(())
}

/// A call past the request's inputs: the caller's loop went too far.
fn no_such_inputs() -> Error {
    Error::invalid("input", "no inputs left for this call")
}

/// The kind of a Bedrock embedding model, from its id: a foundation-model
/// id (`amazon.titan-embed-text-v2:0`), the same behind a cross-region
/// profile's geography (`us.cohere.embed-v4:0`), or a foundation-model ARN.
/// `None` for anything else, an application inference profile's opaque
/// ARN included.
pub fn bedrock_flavor(model_id: &str) -> Option<BedrockEmbed> {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    let id = match id.split_once('.') {
        Some((_, rest)) if rest.starts_with("amazon.") || rest.starts_with("cohere.") => rest,
        _ => id,
    };
    if id.starts_with("amazon.titan-embed-text-v1") || id.starts_with("amazon.titan-embed-g1-text") {
        Some(BedrockEmbed::Titan(Titan::V1))
    } else if id.starts_with("amazon.titan-embed-text-v2") {
        Some(BedrockEmbed::Titan(Titan::V2))
    } else if id.starts_with("cohere.embed-") {
        Some(BedrockEmbed::Cohere)
    } else {
        None
    }
}

/// One provider answer read: its vectors (raw JSON arrays, in order) and
/// the input tokens it reported.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub vectors: Vec<Raw<'a>>,
    pub prompt_tokens: u64,
}

#[derive(Deserialize)]
struct GeminiWire<'a> {
    #[serde(borrow, default)]
    embeddings: Option<Vec<GeminiEmbedding<'a>>>,
}

#[derive(Deserialize)]
struct GeminiEmbedding<'a> {
    #[serde(borrow, default)]
    values: Option<Raw<'a>>,
}

/// Reads a `batchEmbedContents` answer (`{"embeddings":[{"values":[...]}]}`).
/// Gemini reports no tokens: the count is 0.
pub fn read_gemini(body: &[u8]) -> Result<Answer<'_>, Error> {
    let wire: GeminiWire<'_> = crate::wire::from_slice(body).map_err(provider_json)?;
    let embeddings = wire.embeddings.ok_or_else(|| missing("Gemini", "embeddings"))?;
    let vectors = embeddings.into_iter().map(|e| e.values.ok_or_else(|| missing("Gemini", "values")));
    Ok(Answer { vectors: vectors.collect::<Result<_, _>>()?, prompt_tokens: 0 })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanWire<'a> {
    #[serde(borrow, default)]
    embedding: Option<Raw<'a>>,
    #[serde(borrow, default)]
    input_text_token_count: Option<Raw<'a>>,
}

/// Reads a Titan answer (`{"embedding":[...],"inputTextTokenCount":N}`):
/// one vector.
pub fn read_titan(body: &[u8]) -> Result<Answer<'_>, Error> {
    let wire: TitanWire<'_> = crate::wire::from_slice(body).map_err(provider_json)?;
    let vector = wire.embedding.ok_or_else(|| missing("Titan", "embedding"))?;
    Ok(Answer { vectors: vec![vector], prompt_tokens: tokens(wire.input_text_token_count) })
}

#[derive(Deserialize)]
struct CohereWire<'a> {
    #[serde(borrow, default)]
    embeddings: Option<Raw<'a>>,
    #[serde(borrow, default)]
    meta: Option<CohereMeta<'a>>,
}

#[derive(Deserialize)]
struct CohereMeta<'a> {
    #[serde(borrow, default)]
    billed_units: Option<CohereBilled<'a>>,
}

#[derive(Deserialize)]
struct CohereBilled<'a> {
    #[serde(borrow, default)]
    input_tokens: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct CohereByType<'a> {
    #[serde(borrow, default)]
    float: Option<Raw<'a>>,
}

/// Reads a Cohere answer: `{"embeddings":[[...]]}` (floats) or
/// `{"embeddings":{"float":[[...]]}}` (by type); tokens from
/// `meta.billed_units.input_tokens` when present.
pub fn read_cohere(body: &[u8]) -> Result<Answer<'_>, Error> {
    let wire: CohereWire<'_> = crate::wire::from_slice(body).map_err(provider_json)?;
    let mut list = wire.embeddings.ok_or_else(|| missing("Cohere", "embeddings"))?;
    if list.is_object() {
        let text = list.as_borrowed().ok_or_else(|| missing("Cohere", "embeddings"))?;
        let by_type: CohereByType<'_> = sonic_rs::from_str(text).map_err(provider_json)?;
        list = by_type.float.ok_or_else(|| missing("Cohere", "embeddings.float"))?;
    }
    let text = list.as_borrowed().filter(|_| list.is_array()).ok_or_else(|| missing("Cohere", "embeddings"))?;
    let vectors: Vec<Raw<'_>> = sonic_rs::from_str(text).map_err(provider_json)?;
    let billed = wire.meta.and_then(|m| m.billed_units).and_then(|b| b.input_tokens);
    Ok(Answer { vectors, prompt_tokens: tokens(billed) })
}

/// A token count; one that is not a whole number counts as 0.
fn tokens(count: Option<Raw<'_>>) -> u64 {
    count.and_then(|c| c.as_u64()).unwrap_or(0)
}

fn provider_json(e: sonic_rs::Error) -> Error {
    Error::Provider(format!("the embeddings answer is not valid JSON: {}", first_line(e)))
}

fn missing(provider: &str, field: &str) -> Error {
    Error::Provider(format!("{provider}'s embeddings answer has no '{field}'"))
}

/// The answers of a request's calls, taken in call order and written as
/// one OpenAI answer. Vectors are copied (or encoded) into the answer as
/// they arrive, so no answer body needs to outlive its call.
#[derive(Debug)]
pub struct Collected {
    target: Target,
    encoding: Encoding,
    inputs: usize,
    /// Calls answered so far; also the number of the next.
    calls: usize,
    /// Vectors written so far; also the next `index`.
    vectors: usize,
    prompt_tokens: u64,
    /// The `data` items written so far, comma-separated.
    data: Vec<u8>,
    /// A vector's `f32` bytes, for base64.
    scratch: Vec<u8>,
}

impl Collected {
    /// Ready for the answers of a request of `inputs` inputs to `target`.
    pub fn new(target: Target, inputs: usize, encoding: Encoding) -> Collected {
        Collected {
            target,
            encoding,
            inputs,
            calls: 0,
            vectors: 0,
            prompt_tokens: 0,
            data: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// How many calls the request takes.
    pub fn calls(&self) -> usize {
        self.target.calls(self.inputs)
    }

    /// Takes the (successful) answer of the next call.
    pub fn add(&mut self, body: &[u8]) -> Result<(), Error> {
        let expected = self.target.inputs_of(self.calls, self.inputs).len();
        if expected == 0 {
            return Err(Error::Provider("more embeddings answers than calls".to_owned()));
        }
        let answer = match self.target {
            Target::Gemini => read_gemini(body),
            Target::Bedrock(BedrockEmbed::Titan(_)) => read_titan(body),
            Target::Bedrock(BedrockEmbed::Cohere) => read_cohere(body),
        }?;
        if answer.vectors.len() != expected {
            return Err(Error::Provider(format!(
                "the provider returned {} embeddings for {expected} inputs",
                answer.vectors.len()
            )));
        }
        for vector in &answer.vectors {
            write_item(&mut self.data, self.vectors, vector, self.encoding, &mut self.scratch)?;
            self.vectors += 1;
        }
        self.calls += 1;
        self.prompt_tokens = self.prompt_tokens.saturating_add(answer.prompt_tokens);
        Ok(())
    }

    /// Writes the OpenAI answer, naming `model` (the model the client
    /// sees), and returns its usage. Fails when a call was not answered.
    pub fn finish(self, model: &str, out: &mut Vec<u8>) -> Result<Usage, Error> {
        if self.vectors != self.inputs {
            return Err(Error::Provider(format!("only {} of {} embeddings were returned", self.vectors, self.inputs)));
        }
        write_list(out, &self.data, model, self.prompt_tokens);
        Ok(Usage { prompt_tokens: self.prompt_tokens, ..Usage::default() })
    }
}

/// Writes an OpenAI embeddings answer of `vectors` (raw JSON arrays of
/// numbers, in input order). On error `out` is left as it was.
pub fn write_openai(
    vectors: &[Raw<'_>],
    model: &str,
    prompt_tokens: u64,
    encoding: Encoding,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut data = Vec::new();
    let mut scratch = Vec::new();
    for (i, vector) in vectors.iter().enumerate() {
        write_item(&mut data, i, vector, encoding, &mut scratch)?;
    }
    write_list(out, &data, model, prompt_tokens);
    Ok(())
}

/// `{"object":"list","data":[DATA],"model":M,"usage":{...}}`.
fn write_list(out: &mut Vec<u8>, data: &[u8], model: &str, prompt_tokens: u64) {
    let mut buffer = itoa::Buffer::new();
    let tokens = buffer.format(prompt_tokens);
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    out.extend_from_slice(data);
    out.extend_from_slice(b"],\"model\":");
    write_json_string(out, model);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    out.extend_from_slice(tokens.as_bytes());
    out.extend_from_slice(b",\"total_tokens\":");
    out.extend_from_slice(tokens.as_bytes());
    out.extend_from_slice(b"}}");
}

/// Appends one `data` item (with a leading comma after the first). On
/// error `out` is left as it was.
fn write_item(
    out: &mut Vec<u8>,
    index: usize,
    vector: &Raw<'_>,
    encoding: Encoding,
    scratch: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    if index > 0 {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
    out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    out.extend_from_slice(b",\"embedding\":");
    let written = match encoding {
        Encoding::Float => copy_vector(vector.json(), out),
        Encoding::Base64 => f32_bytes(vector.json(), scratch).map(|()| {
            out.push(b'"');
            base64(scratch, out);
            out.push(b'"');
        }),
    };
    match written {
        Ok(()) => {
            out.push(b'}');
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The inside of a vector: between its brackets, only number characters,
/// commas and whitespace, and a digit in every item (so at least one).
fn vector_body(json: &str) -> Result<&str, Error> {
    let body = json.trim().strip_prefix('[').and_then(|b| b.strip_suffix(']'));
    let number_text = |b: u8| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b',');
    match body {
        Some(body)
            if body.bytes().all(|b| number_text(b) || b.is_ascii_whitespace())
                && body.split(',').all(|item| item.bytes().any(|b| b.is_ascii_digit())) =>
        {
            Ok(body)
        }
        _ => Err(not_a_vector()),
    }
}

fn not_a_vector() -> Error {
    Error::Provider("an embedding is not an array of numbers".to_owned())
}

/// Copies a vector's JSON without its whitespace; the numbers keep their
/// text. On error `out` may hold part of it (the caller truncates).
fn copy_vector(json: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    let body = vector_body(json)?;
    out.push(b'[');
    out.extend(body.bytes().filter(|b| !b.is_ascii_whitespace()));
    out.push(b']');
    Ok(())
}

/// A vector's numbers as little-endian `f32` bytes, into `bytes` (cleared
/// first). Each item must parse as an `f32`.
fn f32_bytes(json: &str, bytes: &mut Vec<u8>) -> Result<(), Error> {
    bytes.clear();
    let body = vector_body(json)?;
    for item in body.split(',') {
        let number: f32 = item.trim().parse().map_err(|_| not_a_vector())?;
        bytes.extend_from_slice(&number.to_le_bytes());
    }
    Ok(())
}

/// Appends `bytes` in standard base64 (RFC 4648 §4), with padding.
fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 0x3f) as usize];
    out.reserve(bytes.len().div_ceil(3) * 4);
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), b'=']);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
