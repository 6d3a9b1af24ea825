//! Python plugin commands: RG.PYSTATS.

use redis_module::{Context, RedisString};

use super::Answer;
use crate::python::allocator;
use crate::reply::Reply;

/// `RG.PYSTATS`: bytes allocated through the Python allocator hooks (zeros when
/// OverridePythonAllocators is off). No arity check.
pub fn py_stats(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    let (total, peak, current) = allocator::stats();
    Reply::Array(vec![
        Reply::bulk("TotalAllocated"),
        Reply::Integer(total as i64),
        Reply::bulk("PeakAllocated"),
        Reply::Integer(peak as i64),
        Reply::bulk("CurrAllocated"),
        Reply::Integer(current as i64),
    ])
    .into()
}

/// `RG.PYDUMPREQS`: the requirements table, one 18-element entry each. No arity check.
pub fn py_dump_reqs(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    crate::reqs::dump_all().into()
}
