// gemv_rows' loads of A on adapters without subgroup operations (appended to gemv.wgsl): every
// lane loads the block itself.

fn a_leader() -> bool {
    return true;
}

fn a_share(v: vec4<f32>) -> vec4<f32> {
    return v;
}
