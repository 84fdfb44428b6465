use super::*;

fn b64(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    base64(bytes, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn base64_rfc4648_vectors() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"f"), "Zg==");
    assert_eq!(b64(b"fo"), "Zm8=");
    assert_eq!(b64(b"foo"), "Zm9v");
    assert_eq!(b64(b"foob"), "Zm9vYg==");
    assert_eq!(b64(b"fooba"), "Zm9vYmE=");
    assert_eq!(b64(b"foobar"), "Zm9vYmFy");
    assert_eq!(b64(&[0xfb, 0xff, 0xbf]), "+/+/");
    assert_eq!(b64(&[0, 0, 0]), "AAAA");
}

fn floats(json: &str) -> Result<Vec<f32>, Error> {
    let mut bytes = Vec::new();
    f32_bytes(json, &mut bytes)?;
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[test]
fn numbers_parse_as_f32() {
    assert_eq!(floats("[1.0, -2.0]").unwrap(), [1.0, -2.0]);
    assert_eq!(floats("[\n  0.5,\n  -0,\n  1e-3,\n  1E+2, 3 ]").unwrap(), [0.5, -0.0, 0.001, 100.0, 3.0]);
    assert_eq!(floats("[0.1]").unwrap(), [0.1f32]);
    // Beyond f32's range: infinity, as a C cast would give.
    assert_eq!(floats("[1e39]").unwrap(), [f32::INFINITY]);
    for bad in ["[]", "[ ]", "[1,]", "[,1]", "[1,,2]", "[\"a\"]", "[null]", "[[1]]", "{}", "1", "", "[1e]", "[--1]"] {
        assert!(floats(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn known_vector_in_base64() {
    let mut out = Vec::new();
    write_openai(&[Raw::from_json("[1.0, -2.0]")], "m", 3, Encoding::Base64, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPwAAAMA="}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#
    );
}

#[test]
fn floats_keep_their_text() {
    let mut out = Vec::new();
    let vectors = [Raw::from_json("[ 0.10000000149, -2 ]"), Raw::from_json("[1e-7]")];
    write_openai(&vectors, "m", 0, Encoding::Float, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""index":0,"embedding":[0.10000000149,-2]}"#), "{text}");
    assert!(text.contains(r#""index":1,"embedding":[1e-7]}"#), "{text}");
}

#[test]
fn a_bad_vector_leaves_out_untouched() {
    let mut out = b"keep".to_vec();
    let vectors = [Raw::from_json("[1]"), Raw::from_json("[\"x\"]")];
    assert!(matches!(write_openai(&vectors, "m", 0, Encoding::Float, &mut out), Err(Error::Provider(_))));
    assert_eq!(out, b"keep");
}

#[test]
fn calls_split_the_inputs() {
    let gemini = Target::Gemini;
    assert_eq!(gemini.calls(1), 1);
    assert_eq!(gemini.calls(100), 1);
    assert_eq!(gemini.calls(101), 2);
    assert_eq!(gemini.inputs_of(1, 101), 100..101);
    let cohere = Target::Bedrock(BedrockEmbed::Cohere);
    assert_eq!(cohere.calls(2048), 22);
    assert_eq!(cohere.inputs_of(0, 97), 0..96);
    assert_eq!(cohere.inputs_of(1, 97), 96..97);
    assert_eq!(cohere.inputs_of(2, 97), 97..97);
    assert_eq!(cohere.inputs_of(usize::MAX, 97), 97..97);
    let titan = Target::Bedrock(BedrockEmbed::Titan(Titan::V2));
    assert_eq!(titan.calls(3), 3);
    assert_eq!(titan.inputs_of(2, 3), 2..3);
}

#[test]
fn bedrock_flavors() {
    let v1 = Some(BedrockEmbed::Titan(Titan::V1));
    let v2 = Some(BedrockEmbed::Titan(Titan::V2));
    assert_eq!(bedrock_flavor("amazon.titan-embed-text-v1"), v1);
    assert_eq!(bedrock_flavor("amazon.titan-embed-g1-text-02"), v1);
    assert_eq!(bedrock_flavor("amazon.titan-embed-text-v2:0"), v2);
    assert_eq!(bedrock_flavor("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"), v2);
    assert_eq!(bedrock_flavor("cohere.embed-english-v3"), Some(BedrockEmbed::Cohere));
    assert_eq!(bedrock_flavor("us.cohere.embed-v4:0"), Some(BedrockEmbed::Cohere));
    assert_eq!(bedrock_flavor("amazon.titan-embed-image-v1"), None);
    assert_eq!(bedrock_flavor("anthropic.claude-3-haiku-20240307-v1:0"), None);
    assert_eq!(bedrock_flavor("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"), None);
    assert_eq!(bedrock_flavor(""), None);
}

#[test]
fn gemini_paths() {
    assert_eq!(gemini_path("gemini-embedding-001"), "/v1beta/models/gemini-embedding-001:batchEmbedContents");
    assert_eq!(gemini_path("models/text-embedding-004"), "/v1beta/models/text-embedding-004:batchEmbedContents");
    assert_eq!(gemini_path("a/b:c"), "/v1beta/models/a%2Fb%3Ac:batchEmbedContents");
}

#[test]
fn too_many_inputs() {
    let items = vec!["\"a\""; EMBEDDING_INPUTS_MAX + 1].join(",");
    let body = format!(r#"{{"model":"m","input":[{items}]}}"#);
    let error = parse_openai(body.as_bytes()).unwrap_err();
    assert_eq!(error.param(), Some("input"));
    let items = vec!["\"a\""; EMBEDDING_INPUTS_MAX].join(",");
    let body = format!(r#"{{"model":"m","input":[{items}]}}"#);
    assert_eq!(parse_openai(body.as_bytes()).unwrap().inputs.len(), EMBEDDING_INPUTS_MAX);
}

#[test]
fn collected_refuses_extra_and_missing_answers() {
    let titan = Target::Bedrock(BedrockEmbed::Titan(Titan::V2));
    let mut collected = Collected::new(titan, 1, Encoding::Float);
    collected.add(br#"{"embedding":[1],"inputTextTokenCount":1}"#).unwrap();
    assert!(matches!(collected.add(br#"{"embedding":[1]}"#), Err(Error::Provider(_))));
    let collected = Collected::new(titan, 2, Encoding::Float);
    assert!(matches!(collected.finish("m", &mut Vec::new()), Err(Error::Provider(_))));
}

#[test]
fn writing_past_the_inputs_fails_without_panicking() {
    let request = parse_openai(br#"{"model":"m","input":["a","b"]}"#).unwrap();
    for target in
        [Target::Gemini, Target::Bedrock(BedrockEmbed::Cohere), Target::Bedrock(BedrockEmbed::Titan(Titan::V1))]
    {
        let mut out = Vec::new();
        assert!(target.write(&request, "m", 5, &mut out).is_err(), "{target:?}");
        assert!(out.is_empty());
    }
}

/// Every prefix of every sample answer and request: errors, never panics.
#[test]
fn cut_inputs_never_panic() {
    let answers: [&[u8]; 4] = [
        br#"{"embeddings":[{"values":[0.1,-0.2]},{"values":[3e-2]}]}"#,
        br#"{"embedding":[1.5,2],"inputTextTokenCount":4}"#,
        br#"{"embeddings":{"float":[[1,2],[3,4]]},"meta":{"billed_units":{"input_tokens":5}}}"#,
        br#"{"embeddings":[[1,2]],"response_type":"embeddings_floats"}"#,
    ];
    for answer in answers {
        for cut in 0..=answer.len() {
            let piece = &answer[..cut];
            for target in
                [Target::Gemini, Target::Bedrock(BedrockEmbed::Titan(Titan::V2)), Target::Bedrock(BedrockEmbed::Cohere)]
            {
                for encoding in [Encoding::Float, Encoding::Base64] {
                    let mut collected = Collected::new(target, 2, encoding);
                    let _ = collected.add(piece);
                    let _ = collected.finish("m", &mut Vec::new());
                }
            }
        }
    }
    let request = br#"{"model":"m","input":["a\"b",[1,2],3],"dimensions":256,"encoding_format":"base64","user":"u"}"#;
    for cut in 0..=request.len() {
        let _ = parse_openai(&request[..cut]);
    }
}

/// The goldens pretty-print bodies, which decodes escapes; the bytes sent
/// are the client's literals, untouched.
#[test]
fn inputs_are_copied_raw() {
    let request = parse_openai(br#"{"model":"m","input":["a\"b \u00e9 \ud83c\udf89"]}"#).unwrap();
    let raw = r#""a\"b \u00e9 \ud83c\udf89""#;
    let mut out = Vec::new();
    write_gemini(&request, "m", 0..1, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains(&format!(r#"{{"text":{raw}}}"#)));
    let mut out = Vec::new();
    write_titan(&request, Titan::V2, 0, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), format!(r#"{{"inputText":{raw},"normalize":true}}"#));
    let mut out = Vec::new();
    write_cohere(&request, 0..1, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().starts_with(&format!(r#"{{"texts":[{raw}],"#)));
}
