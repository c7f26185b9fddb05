//! Acceptance point 6: `api_key` and `passthrough` provider auth, gateway client keys that
//! select (and pin) a workspace and never leave the gateway, and `require_client_key`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::Outcome;
use switchyard_mock::{MockConfig, MockUpstream, RecordedRequest};
use switchyard_tests::harness::manifests::{
    api_key, client_key, mux_rule, passthrough, provider, secret, to_provider, workspace,
};
use switchyard_tests::harness::{Gateway, GatewayOptions};

const OPENAI_KEY: &str = "sk-provider-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-provider-0123456789";
const CALLER_KEY: &str = "sk-caller-own-key-0123456789";
const CALLER_ANTHROPIC_KEY: &str = "sk-ant-caller-own-0123456789";
const TEAM_KEY: &str = "sy-team-a-gateway-key-0123456789";

async fn mock(config: MockConfig) -> MockUpstream {
    MockUpstream::start_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "who am i"}]})
}

/// Every header value the upstream received, for "never forwarded" checks.
fn all_header_values(requests: &[RecordedRequest]) -> String {
    requests
        .iter()
        .flat_map(|r| r.headers.iter().map(|(n, v)| format!("{n}: {v}\n")))
        .collect()
}

#[tokio::test]
async fn api_key_is_sent_the_way_each_dialect_expects_and_the_callers_key_never() {
    // This mock checks the provider keys: a caller key sent instead would be refused.
    let keyed = mock(MockConfig {
        require_key: Some(OPENAI_KEY.into()),
        anthropic_key: Some(ANTHROPIC_KEY.into()),
        ..Default::default()
    })
    .await;
    let open = mock(MockConfig::default()).await;
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        secret(
            "llm-keys",
            &[("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY)],
        ),
        api_key(
            provider(
                "openai",
                "openai",
                &format!("{}/v1", keyed.base_url()),
                &["gpt-mock"],
            ),
            "llm-keys",
            "openai",
        ),
        api_key(
            provider("claude", "anthropic", &keyed.base_url(), &["claude-mock"]),
            "llm-keys",
            "anthropic",
        ),
        provider(
            "local",
            "vllm",
            &format!("{}/v1", open.base_url()),
            &["local-mock"],
        ),
    ])
    .await
    .unwrap();
    let bearer = format!("Bearer {CALLER_KEY}");
    for (path, model, stream) in [
        ("/v1/chat/completions", "gpt-mock", false),
        ("/v1/chat/completions", "gpt-mock", true),
        ("/v1/chat/completions", "claude-mock", false),
        ("/v1/messages", "claude-mock", true),
        ("/v1/messages", "gpt-mock", false),
        ("/v1/chat/completions", "local-mock", false),
        ("/v1/messages", "local-mock", true),
    ] {
        let mut body = chat(model);
        body["stream"] = json!(stream);
        let a = gw
            .post_with(
                path,
                &body,
                &[
                    ("authorization", bearer.as_str()),
                    ("x-api-key", CALLER_ANTHROPIC_KEY),
                ],
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{path} {model}: {}", a.text);
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(
            r.credential_kind, "passthrough",
            "the caller presented a key of its own"
        );
        assert_eq!(r.outcome, Outcome::Success);
    }
    let got = keyed.requests();
    assert_eq!(got.len(), 5);
    for r in &got {
        match r.path.as_str() {
            "/v1/chat/completions" => {
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {OPENAI_KEY}").as_str())
                );
                assert_eq!(r.header("x-api-key"), None);
            }
            "/v1/messages" => {
                assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
                assert_eq!(r.header("authorization"), None);
            }
            p => panic!("unexpected path {p}"),
        }
    }
    let none = open.requests();
    assert_eq!(none.len(), 2);
    assert!(
        none.iter()
            .all(|r| r.header("authorization").is_none() && r.header("x-api-key").is_none())
    );
    let seen = all_header_values(&got) + &all_header_values(&none);
    assert!(
        !seen.contains(CALLER_KEY) && !seen.contains(CALLER_ANTHROPIC_KEY),
        "{seen}"
    );
}

#[tokio::test]
async fn passthrough_forwards_the_callers_own_key() {
    let keyed = mock(MockConfig {
        require_key: Some(CALLER_KEY.into()),
        anthropic_key: Some(CALLER_ANTHROPIC_KEY.into()),
        ..Default::default()
    })
    .await;
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        passthrough(provider(
            "openai",
            "openrouter",
            &format!("{}/v1", keyed.base_url()),
            &["gpt-mock"],
        )),
        passthrough(provider(
            "claude",
            "anthropic",
            &keyed.base_url(),
            &["claude-mock"],
        )),
    ])
    .await
    .unwrap();
    let bearer = format!("Bearer {CALLER_KEY}");
    let a = gw
        .post_with(
            "/v1/chat/completions",
            &chat("gpt-mock"),
            &[("authorization", &bearer)],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let a = gw
        .post_with(
            "/v1/messages",
            &chat("claude-mock"),
            &[
                ("x-api-key", CALLER_ANTHROPIC_KEY),
                ("anthropic-version", "2023-06-01"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let got = keyed.requests();
    assert_eq!(got[0].header("authorization"), Some(bearer.as_str()));
    assert_eq!(got[1].header("x-api-key"), Some(CALLER_ANTHROPIC_KEY));
    assert_eq!(got[1].header("authorization"), None);

    // An OpenAI-format caller's bearer key goes to an Anthropic passthrough provider as x-api-key.
    let b = format!("Bearer {CALLER_ANTHROPIC_KEY}");
    let a = gw
        .post_with(
            "/v1/chat/completions",
            &chat("claude-mock"),
            &[("authorization", &b)],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        keyed.requests()[2].header("x-api-key"),
        Some(CALLER_ANTHROPIC_KEY)
    );

    // No key of its own: refused before anything is sent, in the caller's dialect.
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["type"], "authentication_error");
    let a = gw
        .post_with(
            "/v1/messages",
            &chat("claude-mock"),
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["type"], "authentication_error");
    assert_eq!(keyed.requests().len(), 3, "nothing sent without a key");
    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, 401);
}

async fn team_setup(mock: &MockUpstream, options: GatewayOptions) -> Gateway {
    let base = format!("{}/v1", mock.base_url());
    Gateway::start_objects_with(
        &[
            workspace("default", true),
            client_key(
                workspace("team-a", false),
                "team-a-ci",
                "team-keys",
                "team-a",
            ),
            secret("team-keys", &[("team-a", TEAM_KEY)]),
            secret("llm-keys", &[("openai", OPENAI_KEY)]),
            api_key(
                provider("openai", "openai", &base, &[]),
                "llm-keys",
                "openai",
            ),
            provider("local", "llamacpp", &base, &[]),
            mux_rule(
                "all-default",
                "default",
                100,
                "catch_all",
                None,
                to_provider("local", Some("m-default")),
            ),
            mux_rule(
                "all-team-a",
                "team-a",
                100,
                "catch_all",
                None,
                to_provider("openai", Some("m-team-a")),
            ),
        ],
        options,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_gateway_client_key_selects_its_workspace_and_never_leaves_the_gateway() {
    let mock = mock(MockConfig::default()).await;
    let gw = team_setup(&mock, GatewayOptions::default()).await;
    let bearer = format!("Bearer {TEAM_KEY}");
    for (headers, want) in [
        (vec![("authorization", bearer.as_str())], "m-team-a"),
        (vec![("x-api-key", TEAM_KEY)], "m-team-a"),
        (
            vec![
                ("authorization", bearer.as_str()),
                ("x-switchyard-workspace", "team-a"),
            ],
            "m-team-a",
        ),
        (
            vec![
                ("authorization", bearer.as_str()),
                ("x-switchyard-workspace", "default/team-a"),
            ],
            "m-team-a",
        ),
        (vec![], "m-default"),
    ] {
        let a = gw
            .post_with("/v1/chat/completions", &chat("anything"), &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{headers:?}: {}", a.text);
        assert_eq!(
            mock.requests().last().unwrap().model(),
            Some(want),
            "{headers:?}"
        );
        let r = gw.record_of(&a.request_id()).await.unwrap();
        if want == "m-team-a" {
            assert_eq!(r.workspace.as_deref(), Some("default/team-a"));
            assert_eq!(r.credential_kind, "gateway_key");
            assert_eq!(
                r.initiator.as_deref(),
                Some("team-a-ci"),
                "the binding's name, not the key"
            );
        } else {
            assert_eq!(r.workspace.as_deref(), Some("default/default"));
            assert_eq!(r.credential_kind, "none");
        }
    }
    let got = mock.requests();
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert!(
        !all_header_values(&got).contains(TEAM_KEY),
        "the gateway key is never forwarded"
    );
    assert!(
        !gw.records()
            .unwrap()
            .iter()
            .any(|r| serde_json::to_string(r).unwrap().contains(TEAM_KEY))
    );

    // The key pins the workspace: naming another one is forbidden, in the caller's dialect.
    let before = mock.requests().len();
    for ws in ["default", "nonexistent"] {
        let a = gw
            .post_with(
                "/v1/chat/completions",
                &chat("anything"),
                &[("authorization", &bearer), ("x-switchyard-workspace", ws)],
            )
            .await
            .unwrap();
        assert_eq!(a.status, 403, "{}", a.text);
        let e = a.json().unwrap();
        assert_eq!(e["error"]["type"], "permission_error");
        assert!(e["error"]["message"].as_str().unwrap().contains("team-a"));
        assert!(!a.text.contains(TEAM_KEY));
    }
    let a = gw
        .post_with(
            "/v1/messages",
            &chat("anything"),
            &[
                ("x-api-key", TEAM_KEY),
                ("x-switchyard-workspace", "default"),
                ("anthropic-version", "2023-06-01"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.json().unwrap()["type"], "error");
    assert_eq!(a.json().unwrap()["error"]["type"], "permission_error");
    assert_eq!(mock.requests().len(), before, "nothing forwarded");
    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(
        (recs.len(), recs[0].status, recs[0].outcome),
        (1, 403, Outcome::Rejected)
    );
}

#[tokio::test]
async fn require_client_key_refuses_callers_without_a_bound_key() {
    let mock = mock(MockConfig::default()).await;
    let gw = team_setup(
        &mock,
        GatewayOptions {
            require_client_key: true,
            ..Default::default()
        },
    )
    .await;
    let other = format!("Bearer {CALLER_KEY}");
    for headers in [vec![], vec![("authorization", other.as_str())]] {
        let a = gw
            .post_with("/v1/chat/completions", &chat("anything"), &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 401, "{}", a.text);
        let e = a.json().unwrap();
        assert_eq!(e["error"]["type"], "authentication_error");
        assert_eq!(e["error"]["code"], "invalid_api_key");
        let a = gw
            .post_with(
                "/v1/messages",
                &chat("anything"),
                &[headers.clone(), vec![("anthropic-version", "2023-06-01")]].concat(),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 401, "{}", a.text);
        assert_eq!(a.json().unwrap()["error"]["type"], "authentication_error");
        let m = gw.get("/v1/models", &headers).await.unwrap();
        assert_eq!(m.status, 401, "{}", m.text);
    }
    assert!(mock.requests().is_empty());
    let bearer = format!("Bearer {TEAM_KEY}");
    let a = gw
        .post_with(
            "/v1/chat/completions",
            &chat("anything"),
            &[("authorization", &bearer)],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(mock.requests()[0].model(), Some("m-team-a"));
    let m = gw
        .get("/v1/models", &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(m.status, 200, "{}", m.text);
    assert!(
        m.json().unwrap()["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "m-team-a")
    );
}
