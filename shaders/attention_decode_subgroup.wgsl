// Decode attention's `subgroup` layout, appended to shaders/attention_decode.wgsl (its Params,
// bindings, overrides (NSG among them), workgroup memory and `window_start`), apart from it because a module
// that uses subgroup operations does not validate on an adapter without SUBGROUP.

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
    let group = p.n_heads / p.n_kv_heads;
    let chunks = (group + GW - 1u) / GW;
    let kv_head = y / chunks;
    let h0 = kv_head * group + (y % chunks) * GW;
    let gw = min(GW, group - (y % chunks) * GW);
    for (var i = lid; i < GW * HD4; i += WG) {
        var q = vec4(0.0);
        if (i < gw * HD4) {
            q = qkv[q_row4 + h0 * HD4 + i] * p.scale;
        }
        q_sh[i] = q;
    }
    if (lid == 0u) {
        n_keys_sh = kv_len;
    }
    let n_keys = workgroupUniformLoad(&n_keys_sh);
    let first = window_start(n_keys) + split * p.split_len;
    let last = min(first + p.split_len, n_keys);
    // The lane's rank and the subgroup's width among its active invocations; the host makes
    // WG a multiple of the largest subgroup size, so every subgroup is whole and width is at
    // least the smallest size: nv <= NV.
    let lane = subgroupExclusiveAdd(1u);
    let width = subgroupAdd(1u);
    let nv = (HD4 + width - 1u) / width;
    var m: array<f32, MAX_G>;
    var l: array<f32, MAX_G>;
    var acc: array<vec4<f32>, MAX_ACC>;
    for (var g = 0u; g < GW; g++) {
        m[g] = NEG_BIG;
        l[g] = 0.0;
    }
    for (var a = 0u; a < GW * NV; a++) {
        acc[a] = vec4(0.0);
    }
    let row0 = (seq * p.n_kv_heads + kv_head) * p.cache_len;
    for (var j = first + sub.x; j < last; j += sub.y) {
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
            let m_new = max(m[g], score);
            corr[g] = exp(m[g] - m_new);
            pj[g] = exp(score - m_new);
            l[g] = l[g] * corr[g] + pj[g];
            m[g] = m_new;
        }
        for (var i = 0u; i < nv; i++) {
            let d = lane + i * width;
            if (d < HD4) {
                let v = v_vec4(row0 + j, HD4, d);
                for (var g = 0u; g < GW; g++) {
                    acc[g * NV + i] = fma(vec4(pj[g]), v, acc[g * NV + i] * corr[g]);
                }
            }
        }
    }
    // Subgroup 0 takes in the others one at a time (the loop runs to the constant NSG so that
    // every invocation meets every barrier), through q_sh once every subgroup has done with q.
    workgroupBarrier();
    for (var src = 1u; src < NSG; src++) {
        if (sub.x == src) {
            for (var g = 0u; g < GW; g++) {
                if (lane == 0u) {
                    ml_sh[g] = vec2(m[g], l[g]);
                }
                for (var i = 0u; i < nv; i++) {
                    let d = lane + i * width;
                    if (d < HD4) {
                        q_sh[g * HD4 + d] = acc[g * NV + i];
                    }
                }
            }
        }
        workgroupBarrier();
        if (sub.x == 0u && src < sub.y) {
            for (var g = 0u; g < GW; g++) {
                let other = ml_sh[g];
                let m_new = max(m[g], other.x);
                let mine = exp(m[g] - m_new);
                let theirs = exp(other.x - m_new);
                l[g] = l[g] * mine + other.y * theirs;
                for (var i = 0u; i < nv; i++) {
                    let d = lane + i * width;
                    if (d < HD4) {
                        acc[g * NV + i] = acc[g * NV + i] * mine + q_sh[g * HD4 + d] * theirs;
                    }
                }
                m[g] = m_new;
            }
        }
        workgroupBarrier();
    }
    for (var g = 0u; g < GW; g++) {
        if (sub.x == 0u && g < gw) {
            let at = ((b * p.n_heads + h0 + g) * p.n_splits + split) * (HD4 + 1u);
            if (lane == 0u) {
                partials[at] = vec4(m[g], l[g], 0.0, 0.0);
            }
            for (var i = 0u; i < nv; i++) {
                let d = lane + i * width;
                if (d < HD4) {
                    partials[at + 1u + d] = acc[g * NV + i];
                }
            }
        }
    }
}
