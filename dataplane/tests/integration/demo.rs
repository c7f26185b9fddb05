//! `--demo`: the quickstart samples written to a work folder with the mock's address, served
//! by the data plane in front of the bundled mock upstream; a chat completion for `demo-fast`
//! and a stream for `demo-smart` answered, and the flag's parsing.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use switchyard_dataplane::config::Config;
use switchyard_dataplane::demo;

fn parse(args: &[&str]) -> Config {
    Config::try_parse_from(std::iter::once("switchyard-dataplane").chain(args.iter().copied()))
        .unwrap()
}

#[test]
fn flag_takes_an_optional_mock_address() {
    assert_eq!(parse(&[]).demo, None);
    assert_eq!(
        parse(&["--demo"]).demo,
        Some(demo::DEFAULT_MOCK_ADDR.parse().unwrap())
    );
    assert_eq!(
        parse(&["--demo=127.0.0.1:9000", "--listen", "127.0.0.1:0"]).demo,
        Some("127.0.0.1:9000".parse().unwrap())
    );
    assert!(
        Config::try_parse_from(["switchyard-dataplane", "--demo", "--operator", "https://x"])
            .is_err()
    );
}

#[tokio::test]
async fn demo_answers_the_quickstart_models() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = std::env::temp_dir().join(format!("switchyard-demo-it-{}", std::process::id()));
    let config = parse(&[
        "--demo=127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let running = demo::start(config, &work).await.unwrap();
    assert_eq!(running.manifests, work.join("manifests"));
    let instructions = running.instructions();
    assert!(instructions.contains(&running.gateway.addr.to_string()));
    assert!(
        instructions.contains(&format!("http://{}/metrics", running.gateway.admin_addr)),
        "{instructions}"
    );
    let base = format!("http://{}", running.gateway.addr);
    let admin = format!("http://{}", running.gateway.admin_addr);
    let client = reqwest::Client::new();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = client.get(format!("{admin}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let answer = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "demo-fast", "messages": [{"role": "user", "content": "Hello!"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty(), "{body}");

    let stream = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({
            "model": "demo-smart",
            "stream": true,
            "messages": [{"role": "user", "content": "Stream, please"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = stream.text().await.unwrap();
    let streamed: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!streamed.is_empty(), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    running.shutdown().await;
    std::fs::remove_dir_all(&work).unwrap();
}
