//! Token usage as providers report it, normalised so cache tokens are never double-counted.
//!
//! The two dialects count input differently:
//! - OpenAI's `prompt_tokens` *includes* cached tokens (`prompt_tokens_details.cached_tokens`), and
//!   OpenRouter additionally reports cache writes as `prompt_tokens_details.cache_write_tokens`,
//!   also included in `prompt_tokens`.
//! - Anthropic's `input_tokens` *excludes* both `cache_read_input_tokens` and
//!   `cache_creation_input_tokens`.
//!
//! [`Usage`] stores the four parts separately (`input_tokens` is the plain, uncached part), so the
//! sum of its input fields is the whole prompt in both dialects.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Token usage of one call, with input split into plain, cache-read and cache-write parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Plain input tokens: neither read from nor written to a prompt cache.
    pub input_tokens: u64,
    /// Generated tokens (including reasoning tokens).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
}

fn count(v: &Value, key: &str) -> Option<u64> {
    let n = v.get(key)?;
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

impl Usage {
    /// Reads an OpenAI-dialect usage object: chat completions and legacy completions
    /// (`prompt_tokens`, `completion_tokens`), embeddings (`prompt_tokens` only) and the
    /// Responses API (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`).
    ///
    /// Cached tokens are taken from `prompt_tokens_details.cached_tokens` (DeepSeek's
    /// `prompt_cache_hit_tokens` when that is absent) and cache writes from
    /// `prompt_tokens_details.cache_write_tokens` (OpenRouter); both are subtracted from the prompt
    /// count to get the plain input. Returns `None` for `null`, non-objects and objects without
    /// any token count (OpenAI streams send `"usage": null` on every chunk but the last).
    pub fn from_openai(usage: &Value) -> Option<Usage> {
        if !usage.is_object() {
            return None;
        }
        let (prompt, completion, details) =
            if usage.get("prompt_tokens").is_some() || usage.get("completion_tokens").is_some() {
                (
                    count(usage, "prompt_tokens"),
                    count(usage, "completion_tokens"),
                    usage.get("prompt_tokens_details"),
                )
            } else if usage.get("input_tokens").is_some() || usage.get("output_tokens").is_some() {
                (
                    count(usage, "input_tokens"),
                    count(usage, "output_tokens"),
                    usage.get("input_tokens_details"),
                )
            } else {
                return None;
            };
        let prompt = prompt.unwrap_or(0);
        let cache_read = details
            .and_then(|d| count(d, "cached_tokens"))
            .or_else(|| count(usage, "prompt_cache_hit_tokens"))
            .unwrap_or(0);
        let cache_write = details
            .and_then(|d| count(d, "cache_write_tokens"))
            .unwrap_or(0);
        Some(Usage {
            input_tokens: prompt.saturating_sub(cache_read.saturating_add(cache_write)),
            output_tokens: completion.unwrap_or(0),
            cache_read_input_tokens: cache_read,
            cache_write_input_tokens: cache_write,
        })
    }

    /// Reads an Anthropic usage object (a response's `usage`, or the `usage` of a
    /// `message_start`/`message_delta` stream event). Missing fields are zero. Returns `None` for
    /// non-objects and objects without any token count.
    pub fn from_anthropic(usage: &Value) -> Option<Usage> {
        if !usage.is_object() {
            return None;
        }
        let keys = [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ];
        if !keys.iter().any(|k| usage.get(k).is_some()) {
            return None;
        }
        Some(Usage {
            input_tokens: count(usage, "input_tokens").unwrap_or(0),
            output_tokens: count(usage, "output_tokens").unwrap_or(0),
            cache_read_input_tokens: count(usage, "cache_read_input_tokens").unwrap_or(0),
            cache_write_input_tokens: count(usage, "cache_creation_input_tokens").unwrap_or(0),
        })
    }

    /// The OpenAI chat usage object: `prompt_tokens` is the whole input (plain + cache read +
    /// cache write), `prompt_tokens_details.cached_tokens` the cache reads and, only when there
    /// were any, `prompt_tokens_details.cache_write_tokens` the cache writes (OpenRouter's field,
    /// which [`Usage::from_openai`] reads back).
    pub fn to_openai(&self) -> Value {
        let prompt = self.total_input();
        let mut details = json!({ "cached_tokens": self.cache_read_input_tokens });
        if self.cache_write_input_tokens > 0 {
            details["cache_write_tokens"] = json!(self.cache_write_input_tokens);
        }
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt.saturating_add(self.output_tokens),
            "prompt_tokens_details": details,
        })
    }

    /// The Anthropic usage object (`input_tokens` excludes the cache fields).
    pub fn to_anthropic(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
        })
    }

    /// All input tokens: plain + cache read + cache write.
    pub fn total_input(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_input_tokens)
            .saturating_add(self.cache_write_input_tokens)
    }

    /// All tokens: [`Usage::total_input`] + output.
    pub fn total(&self) -> u64 {
        self.total_input().saturating_add(self.output_tokens)
    }

    /// Whether every count is zero.
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }

    /// Folds a later report of the same call into this one: every non-zero field of `other`
    /// replaces ours. Providers report running totals (Anthropic's `message_start` then
    /// `message_delta`, whose `output_tokens` is cumulative), so values are replaced, never
    /// added, and a field a later report leaves out (zero) keeps its earlier value.
    pub fn merge(&mut self, other: Usage) {
        fn take(mine: &mut u64, theirs: u64) {
            if theirs != 0 {
                *mine = theirs;
            }
        }
        take(&mut self.input_tokens, other.input_tokens);
        take(&mut self.output_tokens, other.output_tokens);
        take(
            &mut self.cache_read_input_tokens,
            other.cache_read_input_tokens,
        );
        take(
            &mut self.cache_write_input_tokens,
            other.cache_write_input_tokens,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Usage {
        Usage {
            input_tokens: 21,
            output_tokens: 393,
            cache_read_input_tokens: 14_806,
            cache_write_input_tokens: 1_024,
        }
    }

    #[test]
    fn openai_prompt_tokens_include_cached_tokens() {
        let u = Usage::from_openai(&json!({
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 128}
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input_tokens: 86,
                output_tokens: 300,
                cache_read_input_tokens: 1920,
                cache_write_input_tokens: 0
            }
        );
        assert_eq!(u.total_input(), 2006);
        assert_eq!(u.total(), 2306);
    }

    #[test]
    fn openai_variants_and_none() {
        // Legacy completions and embeddings.
        let legacy = json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12});
        assert_eq!(Usage::from_openai(&legacy).unwrap().input_tokens, 5);
        let emb = Usage::from_openai(&json!({"prompt_tokens": 8, "total_tokens": 8})).unwrap();
        assert_eq!((emb.input_tokens, emb.output_tokens), (8, 0));
        // Responses API.
        let resp = Usage::from_openai(&json!({
            "input_tokens": 100, "output_tokens": 4,
            "input_tokens_details": {"cached_tokens": 60}
        }))
        .unwrap();
        assert_eq!((resp.input_tokens, resp.cache_read_input_tokens), (40, 60));
        // DeepSeek.
        let ds = Usage::from_openai(&json!({
            "prompt_tokens": 50, "completion_tokens": 1,
            "prompt_cache_hit_tokens": 30, "prompt_cache_miss_tokens": 20
        }))
        .unwrap();
        assert_eq!((ds.input_tokens, ds.cache_read_input_tokens), (20, 30));
        // OpenRouter cache writes.
        let or = Usage::from_openai(&json!({
            "prompt_tokens": 194, "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100}
        }))
        .unwrap();
        assert_eq!((or.input_tokens, or.cache_write_input_tokens), (94, 100));
        // Inconsistent reports never underflow.
        let bad = Usage::from_openai(&json!({
            "prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 10}
        }))
        .unwrap();
        assert_eq!(bad.input_tokens, 0);
        assert_eq!(Usage::from_openai(&Value::Null), None);
        assert_eq!(Usage::from_openai(&json!({})), None);
        assert_eq!(Usage::from_openai(&json!("x")), None);
    }

    #[test]
    fn anthropic_input_excludes_cache_tokens() {
        let u = Usage::from_anthropic(&json!({
            "input_tokens": 21,
            "cache_creation_input_tokens": 1024,
            "cache_read_input_tokens": 14806,
            "output_tokens": 393,
            "service_tier": "standard"
        }))
        .unwrap();
        assert_eq!(u, sample());
        assert_eq!(u.total_input(), 21 + 1024 + 14_806);
        assert_eq!(Usage::from_anthropic(&json!({"service_tier": "x"})), None);
        assert_eq!(Usage::from_anthropic(&Value::Null), None);
    }

    #[test]
    fn cache_tokens_are_never_double_counted() {
        let u = sample();
        // Usage -> OpenAI: the prompt counts every cache token exactly once.
        let openai = u.to_openai();
        assert_eq!(openai["prompt_tokens"], json!(21 + 14_806 + 1_024));
        assert_eq!(openai["total_tokens"], json!(21 + 14_806 + 1_024 + 393));
        assert_eq!(
            openai["prompt_tokens_details"]["cached_tokens"],
            json!(14_806)
        );
        // OpenAI -> Usage -> OpenAI and Anthropic -> Usage -> Anthropic are identities.
        assert_eq!(Usage::from_openai(&openai), Some(u));
        assert_eq!(Usage::from_anthropic(&u.to_anthropic()), Some(u));
        // Anthropic -> OpenAI -> Anthropic keeps input_tokens plain.
        let back = Usage::from_openai(
            &Usage::from_anthropic(&u.to_anthropic())
                .unwrap()
                .to_openai(),
        )
        .unwrap()
        .to_anthropic();
        assert_eq!(back["input_tokens"], json!(21));
        assert_eq!(back["cache_read_input_tokens"], json!(14_806));
        assert_eq!(back["cache_creation_input_tokens"], json!(1_024));
        // OpenAI -> Anthropic -> OpenAI keeps prompt_tokens whole.
        let oa = json!({
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920}
        });
        let a = Usage::from_openai(&oa).unwrap().to_anthropic();
        assert_eq!(a["input_tokens"], json!(86));
        let o = Usage::from_anthropic(&a).unwrap().to_openai();
        assert_eq!(o["prompt_tokens"], json!(2006));
        assert_eq!(o["total_tokens"], json!(2306));
        // No cache writes: no extension field.
        assert!(
            o["prompt_tokens_details"]
                .get("cache_write_tokens")
                .is_none()
        );
    }

    #[test]
    fn merge_replaces_with_later_non_zero_values() {
        // message_start: input and cache counts, output 1.
        let mut u = Usage::from_anthropic(&json!({
            "input_tokens": 21, "cache_creation_input_tokens": 1024,
            "cache_read_input_tokens": 14806, "output_tokens": 1
        }))
        .unwrap();
        // message_delta: cumulative output only.
        u.merge(Usage::from_anthropic(&json!({"output_tokens": 200})).unwrap());
        u.merge(Usage::from_anthropic(&json!({"output_tokens": 393})).unwrap());
        assert_eq!(u, sample());
        // Newer message_delta repeats every field: merging it again changes nothing.
        u.merge(sample());
        assert_eq!(u, sample());
        let mut z = Usage::default();
        assert!(z.is_zero());
        z.merge(Usage::default());
        assert!(z.is_zero());
    }
}
