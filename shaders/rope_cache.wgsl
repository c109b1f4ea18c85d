// Rotary position embedding, and the KV-cache write, for one layer.
//
// `qkv` rows hold [q heads | k heads | v heads], each head `head_dim` wide. For token t of a
// sequence (b = t / seq_len, pos = pos_base + t % seq_len) this rotates the q heads in place,
// and writes the rotated k heads and the v heads to the caches at [b, kv_head, pos, :].
// Rotation pairs are (i, i + head_dim / 2) (the Llama / NeoX convention), with cos and sin
// from a table computed on the host in f64 (`rope` rows: pos, columns: pair i, as cos, sin):
// GPU sin/cos lose accuracy for large angles.

struct Params {
    tokens: u32,
    seq_len: u32,
    pos_base: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    qkv_stride: u32,
    cache_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>;

// Serving (`rope_cache_rows`): each row t names its own cache sequence and position in
// `rows[t]` = (sequence, position), so one call covers sequences at ragged depths.
@group(0) @binding(5) var<storage, read> rows: array<vec2<u32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG, 1, 1)
fn rope_cache(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.z;
    if (t >= p.tokens) {
        return;
    }
    rope_row(gid.x, gid.y, t, t / p.seq_len, p.pos_base + t % p.seq_len);
}

@compute @workgroup_size(WG, 1, 1)
fn rope_cache_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.z;
    if (t >= p.tokens) {
        return;
    }
    let row = rows[t];
    rope_row(gid.x, gid.y, t, row.x, row.y);
}

// Rotation pair i of head `slot` (q heads, then k heads) of qkv row t, for cache sequence b at
// position pos.
fn rope_row(i: u32, slot: u32, t: u32, b: u32, pos: u32) {
    let half = p.head_dim / 2u;
    if (i >= half || slot >= p.n_heads + p.n_kv_heads) {
        return;
    }
    let cs = rope[pos * half + i];
    let base = t * p.qkv_stride + slot * p.head_dim;
    let x0 = qkv[base + i];
    let x1 = qkv[base + i + half];
    let r0 = x0 * cs.x - x1 * cs.y;
    let r1 = x1 * cs.x + x0 * cs.y;
    if (slot < p.n_heads) {
        qkv[base + i] = r0;
        qkv[base + i + half] = r1;
        return;
    }
    let kv_head = slot - p.n_heads;
    let at = ((b * p.n_kv_heads + kv_head) * p.cache_len + pos) * p.head_dim;
    k_cache[at + i] = r0;
    k_cache[at + i + half] = r1;
    let v_base = t * p.qkv_stride + (p.n_heads + p.n_kv_heads + kv_head) * p.head_dim;
    v_cache[at + i] = qkv[v_base + i];
    v_cache[at + i + half] = qkv[v_base + i + half];
}
