//! (being written)
use crate::jit::spec::{any_target, no_preamble, no_rules};
use crate::jit::Family;
pub static FAMILY: Family = Family {
    name: "qgemm",
    doc: "",
    body: "qgemm.hip",
    instance: "qgemm.inst",
    params: &[],
    validate: no_rules,
    applies: |_, _| false,
    preamble: no_preamble,
};
#[allow(dead_code)]
fn _x() {
    let _ = any_target;
}
