// Decode attention's `subgroup` layout, appended to shaders/attention_decode.wgsl (its Params,
// bindings, overrides (NSG among them), workgroup memory and the group layouts' helpers:
// `head_chunk`, `load_queries`, `Running`, `merge_into_first`, `store_partials`), apart from
// it because a module that uses subgroup operations does not validate on an adapter without
// SUBGROUP.

@compute @workgroup_size(WG, 1, 1)
fn attention_subgroups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sid: u32,
    @builtin(num_subgroups) nsg: u32,
) {
    let b = wid.z;
    subgroup_keys(wid.x, wid.y, b, b * p.q_stride4, b, p.kv_len, lid, vec2(sid, nsg));
}

@compute @workgroup_size(WG, 1, 1)
fn attention_subgroups_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sid: u32,
    @builtin(num_subgroups) nsg: u32,
) {
    let b = wid.z;
    let row = rows[p.row_base + b];
    subgroup_keys(
        wid.x,
        wid.y,
        b,
        (p.row_base + b) * p.q_stride4,
        row.x,
        row.y + 1u,
        lid,
        vec2(sid, nsg),
    );
}

// One split as in group_keys (the same workgroups, query heads and partials), with the lanes of
// each subgroup spanning the head: lane c owns vec4s c, c + width, ... of q, k, v and the
// output, so neighbouring lanes read neighbouring words of each key and value row, and
// subgroupAdd turns the lanes' partial dot products into the key's scores, with no workgroup
// memory or barrier per key. The subgroups take the split's keys in turn (key sid, sid + nsg,
// ...), each with its own running max, sum and output; at the end they merge through workgroup
// memory into one partial per head. Every lane of a subgroup runs the same number of
// iterations before each subgroup operation (the key loop's bounds are the subgroup's).
// `sub`: (subgroup_id, num_subgroups).
fn subgroup_keys(
    split: u32,
    y: u32,
    b: u32,
    q_row4: u32,
    seq: u32,
    kv_len: u32,
    lid: u32,
    sub: vec2<u32>,
) {
    let ch = head_chunk(y);
    let keys = load_queries(ch, q_row4, split, kv_len, lid);
    // The lane's rank and the subgroup's width among its active invocations; the host makes
    // WG a multiple of the largest subgroup size, so every subgroup is whole and width is at
    // least the smallest size: nv <= NV.
    let lane = subgroupExclusiveAdd(1u);
    let width = subgroupAdd(1u);
    let nv = (HD4 + width - 1u) / width;
    var r = running_start();
    let row0 = (seq * p.n_kv_heads + ch.kv_head) * p.cache_len;
    for (var j = keys.x + sub.x; j < keys.y; j += sub.y) {
        var s: array<f32, MAX_G>;
        for (var g = 0u; g < GW; g++) {
            s[g] = 0.0;
        }
        for (var i = 0u; i < nv; i++) {
            let d = lane + i * width;
            if (d < HD4) {
                let k = k_vec4(row0 + j, HD4, d);
                for (var g = 0u; g < GW; g++) {
                    s[g] += dot(q_sh[g * HD4 + d], k);
                }
            }
        }
        var pj: array<f32, MAX_G>;
        var corr: array<f32, MAX_G>;
        for (var g = 0u; g < GW; g++) {
            let score = subgroupAdd(s[g]);
            let m_new = max(r.m[g], score);
            corr[g] = exp(r.m[g] - m_new);
            pj[g] = exp(score - m_new);
            r.l[g] = r.l[g] * corr[g] + pj[g];
            r.m[g] = m_new;
        }
        for (var i = 0u; i < nv; i++) {
            let d = lane + i * width;
            if (d < HD4) {
                let v = v_vec4(row0 + j, HD4, d);
                for (var g = 0u; g < GW; g++) {
                    r.acc[g * NV + i] = fma(vec4(pj[g]), v, r.acc[g * NV + i] * corr[g]);
                }
            }
        }
    }
    // Subgroup 0 takes in the others one at a time (the loop runs to the constant NSG so that
    // every invocation meets every barrier), through q_sh once every subgroup has done with q.
    workgroupBarrier();
    for (var src = 1u; src < NSG; src++) {
        merge_into_first(src, src < sub.y, sub.x, lane, width, nv, &r);
    }
    if (sub.x == 0u) {
        store_partials(&r, ch, b, split, lane, width, nv);
    }
}
