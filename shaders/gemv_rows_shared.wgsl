// gemv_rows' loads of A on adapters with SUBGROUP (appended to gemv.wgsl): every lane of a
// subgroup needs the same block of A, so the first active lane loads it and the subgroup
// broadcasts it. A CPU driver loads storage one lane and one 32-bit component at a time, so this
// is one load where there were as many as the subgroup has lanes. gemv_rows keeps every lane in
// its loop over K (whose trip count is uniform), so the lane that loads and the lane whose value
// is broadcast are the same.

fn a_leader() -> bool {
    return subgroupExclusiveAdd(1u) == 0u;
}

fn a_share(v: vec4<f32>) -> vec4<f32> {
    return subgroupBroadcastFirst(v);
}
