// Multi-head latent attention (MLA, DeepSeek-V2/V3) around the ordinary attention kernels.
// A layer caches one latent row per position, [c (latent) | k_rope (rope_dim)], shared by every
// head: c is the normalised latent (kv_a · W_kv_a, then RMSNorm), k_rope the rotated rotary key.
//
//   mla_rope:   for each new token, writes its latent row to the cache at (sequence, position)
//               and its queries to `qatt` (rows of `att_stride` floats, `att_dim` per head):
//               the rotated rotary part at `rope_off` of each head and, with `copy_nope`, the
//               non-rotary part at 0 (decompressed form; the absorbed form writes q_nope·W_UK
//               there with shaders/head_matmul.wgsl instead).
//   mla_expand: decompressed form: from kv_b (rows of `kvb_stride`, per head [k_nope | v]) and
//               the latent cache, the per-head K and V caches [sequence, head, position,
//               att_dim] of ordinary multi-head attention: K = [k_nope | k_rope | 0], V = [v | 0].
//   mla_compact: attention output rows (att_dim per head) to rows of v_dim per head, the input
//               of the output projection.
//
// Rotation pairs are (i, i + rope_dim / 2) of the rotary part, cos and sin from the host's f64
// table (rows: position, columns: pair), as shaders/rope_cache.wgsl.

struct Params {
    tokens: u32,
    seq_len: u32,
    pos_base: u32,
    n_heads: u32,
    cache_len: u32,
    latent: u32,
    rope_dim: u32,
    nope: u32,
    v_dim: u32,
    q_stride: u32,
    q_off: u32,
    kva_stride: u32,
    kva_rope_off: u32,
    att_stride: u32,
    att_dim: u32,
    rope_off: u32,
    copy_nope: u32,
    kvb_stride: u32,
    rows: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// mla_rope: q rows and kv_a rows (read), the normalised latent rows (t × latent).
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kva: array<f32>;
@group(0) @binding(3) var<storage, read> c_norm: array<f32>;
@group(0) @binding(4) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> latent_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> qatt: array<f32>;

override WG: u32 = 64u;

fn latent_row(b: u32, pos: u32) -> u32 {
    return (b * p.cache_len + pos) * (p.latent + p.rope_dim);
}

// x: element, y: slot (query heads 0..n_heads, then the latent row), z: token.
@compute @workgroup_size(WG, 1, 1)
fn mla_rope(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let slot = gid.y;
    let t = gid.z;
    if (t >= p.tokens || slot > p.n_heads) {
        return;
    }
    let b = t / p.seq_len;
    let pos = p.pos_base + t % p.seq_len;
    let half = p.rope_dim / 2u;
    if (slot < p.n_heads) {
        let q_head = t * p.q_stride + p.q_off + slot * (p.nope + p.rope_dim);
        let out = t * p.att_stride + slot * p.att_dim;
        if (x < half) {
            let cs = rope[pos * half + x];
            let x0 = q[q_head + p.nope + x];
            let x1 = q[q_head + p.nope + x + half];
            qatt[out + p.rope_off + x] = x0 * cs.x - x1 * cs.y;
            qatt[out + p.rope_off + x + half] = x1 * cs.x + x0 * cs.y;
        }
        if (p.copy_nope != 0u && x < p.nope) {
            qatt[out + x] = q[q_head + x];
        }
        return;
    }
    let row = latent_row(b, pos);
    if (x < half) {
        let cs = rope[pos * half + x];
        let k = t * p.kva_stride + p.kva_rope_off;
        let x0 = kva[k + x];
        let x1 = kva[k + x + half];
        latent_cache[row + p.latent + x] = x0 * cs.x - x1 * cs.y;
        latent_cache[row + p.latent + x + half] = x1 * cs.x + x0 * cs.y;
    }
    if (x < p.latent) {
        latent_cache[row + x] = c_norm[t * p.latent + x];
    }
}

// mla_expand's bindings (its own layout: kv_b rows and the latent cache in, K and V out).
@group(0) @binding(1) var<storage, read> kvb: array<f32>;
@group(0) @binding(2) var<storage, read> cached: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>;

// x: element of the head (0..att_dim), y: head, z: cache row (sequence · cache_len + position)
// of the `rows` rows expanded; kv_b row z belongs to cache row z.
@compute @workgroup_size(WG, 1, 1)
fn mla_expand(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let h = gid.y;
    let r = gid.z;
    if (x >= p.att_dim || h >= p.n_heads || r >= p.rows) {
        return;
    }
    let b = r / p.cache_len;
    let pos = r % p.cache_len;
    let src = r * p.kvb_stride + h * (p.nope + p.v_dim);
    var k = 0.0;
    if (x < p.nope) {
        k = kvb[src + x];
    } else if (x < p.nope + p.rope_dim) {
        k = cached[r * (p.latent + p.rope_dim) + p.latent + x - p.nope];
    }
    var v = 0.0;
    if (x < p.v_dim) {
        v = kvb[src + p.nope + x];
    }
    let at = ((b * p.n_heads + h) * p.cache_len + pos) * p.att_dim + x;
    k_cache[at] = k;
    v_cache[at] = v;
}

// mla_compact's bindings.
@group(0) @binding(1) var<storage, read> wide: array<f32>;
@group(0) @binding(2) var<storage, read_write> narrow: array<f32>;

// x: element (0..v_dim), y: head, z: token.
@compute @workgroup_size(WG, 1, 1)
fn mla_compact(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let h = gid.y;
    let t = gid.z;
    if (x >= p.v_dim || h >= p.n_heads || t >= p.tokens) {
        return;
    }
    narrow[(t * p.n_heads + h) * p.v_dim + x] = wide[t * p.att_stride + h * p.att_dim + x];
}
