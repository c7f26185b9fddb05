//! The interception record (types shared with the operator, in `switchyard_crds::record`).

use switchyard_crds::common::ModelPricing;
pub use switchyard_crds::record::*;

/// Prices a record an upstream served: its cost under `pricing` (the price the serving
/// Provider/Backend declares for the model, [`switchyard_crds::pricing::price_for`]) with
/// `cost_source: declared`, or a zero cost with `cost_source: unpriced` when nothing prices the
/// model, so an unknown cost is never mistaken for a free call.
pub fn price(rec: &mut Interception, pricing: Option<&ModelPricing>) {
    match pricing {
        Some(p) => {
            rec.cost = Cost::of(&rec.usage, p);
            rec.cost_source = Some(CostSource::Declared);
        }
        None => {
            rec.cost = Cost::default();
            rec.cost_source = Some(CostSource::Unpriced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Interception {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::from_u128(1), "request_id": "r",
            "started_at": "2025-01-01T00:00:00Z", "ended_at": "2025-01-01T00:00:01Z",
            "endpoint": "/v1/messages", "credential_kind": "none", "client": "c",
            "model_requested": "m", "model_served": "m", "status": 200, "outcome": "success",
            "stream": false, "latency_ms": 1,
            "usage": {"input_tokens": 1_000_000, "output_tokens": 2_000_000,
                "cache_read_input_tokens": 0, "cache_write_input_tokens": 0},
            "usage_estimated": false, "cost": {"input": 7.0, "output": 7.0},
            "snapshot_version": "v"
        }))
        .unwrap()
    }

    #[test]
    fn a_priced_call_is_declared_and_an_unpriced_one_says_so_with_zero_cost() {
        let mut rec = served();
        let p = ModelPricing {
            input: 3.0,
            output: 15.0,
            ..Default::default()
        };
        price(&mut rec, Some(&p));
        assert_eq!((rec.cost.input, rec.cost.output), (3.0, 30.0));
        assert_eq!(rec.cost_source, Some(CostSource::Declared));
        price(&mut rec, None);
        assert_eq!((rec.cost.input, rec.cost.output), (0.0, 0.0));
        assert_eq!(rec.cost_source, Some(CostSource::Unpriced));
        let wire = serde_json::to_value(&rec).unwrap();
        assert_eq!(wire["cost_source"], CostSource::Unpriced.as_str());
        // Records written before the field existed still read.
        assert_eq!(served().cost_source, None);
    }
}
