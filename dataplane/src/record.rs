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
