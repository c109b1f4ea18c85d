// gemv_rows' loads of A on adapters with SUBGROUP (appended to gemv.wgsl): every lane of a
// subgroup needs the same block of A, so lane 0 loads it and the subgroup broadcasts it. A CPU
// driver loads storage one lane and one 32-bit component at a time, so this is one load where
// there were as many as the subgroup has lanes. gemv_rows keeps every invocation in its loop over
// K, so lane 0 is active and the lowest active lane: the one that loads is the one broadcast
// (a broadcast from a constant lane also compiles to less than subgroupBroadcastFirst).

fn a_leader() -> bool {
    return subgroupExclusiveAdd(1u) == 0u;
}

fn a_share(v: vec4<f32>) -> vec4<f32> {
    return subgroupBroadcast(v, 0u);
}
