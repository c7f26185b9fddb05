//! Acceptance point 2: every provider type, pointed at the mock upstream — the path, dialect
//! and auth header the upstream received, and the provider type recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use switchyard_dataplane::record::Outcome;
use switchyard_mock::{MockConfig, MockUpstream};
use switchyard_tests::harness::manifests::{api_key, provider, secret, workspace};
use switchyard_tests::harness::{Gateway, openai_stream_text};

const OPENAI_DIALECT: [&str; 6] = [
    "openai",
    "vllm",
    "ollama",
    "lm_studio",
    "llamacpp",
    "openrouter",
];

fn key_of(type_: &str) -> String {
    format!("key-for-{type_}")
}

async fn setup(mock: &MockUpstream) -> Gateway {
    let base = mock.base_url();
    let keys: Vec<(String, String)> = OPENAI_DIALECT
        .iter()
        .chain(["anthropic"].iter())
        .map(|t| ((*t).to_owned(), key_of(t)))
        .collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut objects = vec![workspace("default", true), secret("provider-keys", &pairs)];
    for t in OPENAI_DIALECT {
        let name = format!("p-{}", t.replace('_', "-"));
        let model = format!("model-{t}");
        objects.push(api_key(
            provider(&name, t, &format!("{base}/v1"), &[&model]),
            "provider-keys",
            t,
        ));
    }
    objects.push(api_key(
        provider("p-anthropic", "anthropic", &base, &["model-anthropic"]),
        "provider-keys",
        "anthropic",
    ));
    Gateway::start_objects(&objects).await.unwrap()
}

#[tokio::test]
async fn every_openai_dialect_provider_type_gets_chat_completions_with_a_bearer_key() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = setup(&mock).await;
    for (i, t) in OPENAI_DIALECT.iter().enumerate() {
        let model = format!("model-{t}");
        for stream in [false, true] {
            let a = gw
                .post(
                    "/v1/chat/completions",
                    &json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "ping the provider"}]}),
                )
                .await
                .unwrap();
            assert_eq!(a.status, 200, "{t}: {}", a.text);
            let text = if stream {
                let (chunks, done) = a.sse_data().unwrap();
                assert!(done, "{t}");
                openai_stream_text(&chunks)
            } else {
                a.json().unwrap()["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            assert_eq!(text, "mock reply: ping the provider", "{t}");
            let got = mock.requests();
            let r = got.last().unwrap();
            assert_eq!(got.len(), 2 * i + 1 + usize::from(stream));
            assert_eq!(r.path, "/v1/chat/completions", "{t}: OpenAI dialect path");
            assert_eq!(r.model(), Some(model.as_str()));
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {}", key_of(t)).as_str()),
                "{t}"
            );
            assert_eq!(r.header("x-api-key"), None, "{t}");
            assert_eq!(r.header("anthropic-version"), None, "{t}");
            assert_eq!(
                r.body["messages"][0]["content"], "ping the provider",
                "{t}: OpenAI body"
            );
            let rec = gw.record_of(&a.request_id()).await.unwrap();
            assert_eq!(rec.provider.as_deref(), Some(*t));
            assert_eq!(
                rec.provider_name.unwrap(),
                format!("default/p-{}", t.replace('_', "-"))
            );
            assert_eq!(rec.outcome, Outcome::Success);
            assert_eq!(
                (rec.usage.input_tokens, rec.usage.output_tokens),
                (3, 5),
                "{t}"
            );
        }
    }
}

#[tokio::test]
async fn anthropic_provider_gets_messages_with_x_api_key_and_a_version() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = setup(&mock).await;
    // An OpenAI-format caller and an Anthropic-format caller, both streamed and not.
    for (path, stream) in [
        ("/v1/chat/completions", false),
        ("/v1/chat/completions", true),
        ("/v1/messages", false),
        ("/v1/messages", true),
    ] {
        mock.clear();
        let a = gw
            .post(
                path,
                &json!({"model": "model-anthropic", "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "ping the provider"}]}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{path} {stream}: {}", a.text);
        let got = mock.requests();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.path, "/v1/messages", "Anthropic dialect path");
        assert_eq!(r.header("x-api-key"), Some(key_of("anthropic").as_str()));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(r.body["max_tokens"], 50);
        assert_eq!(r.body["messages"][0]["role"], "user");
        let rec = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(rec.provider.as_deref(), Some("anthropic"));
        assert_eq!(rec.provider_name.as_deref(), Some("default/p-anthropic"));
        assert_eq!((rec.usage.input_tokens, rec.usage.output_tokens), (3, 5));
    }
}

#[tokio::test]
async fn a_key_checking_upstream_accepts_the_configured_keys() {
    // The mock refuses wrong keys with 401: a misrouted credential would fail here.
    let mock = MockUpstream::start_with(
        "127.0.0.1:0".parse().unwrap(),
        MockConfig {
            require_key: Some(key_of("openrouter")),
            anthropic_key: Some(key_of("anthropic")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let gw = setup(&mock).await;
    let ok = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "model-openrouter", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    let ok = gw
        .post("/v1/messages", &json!({"model": "model-anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    let wrong = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "model-vllm", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .unwrap();
    assert_eq!(
        wrong.status, 401,
        "the vLLM key is not the OpenRouter key: {}",
        wrong.text
    );
    assert_eq!(
        wrong.json().unwrap()["error"]["type"],
        "authentication_error"
    );
}
