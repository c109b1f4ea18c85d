// Rotary position embedding, and the KV-cache write, for one layer.
//
// `qkv` rows hold [q heads | k heads | v heads], each head `head_dim` wide. For token t of a
// sequence (b = t / seq_len, pos = pos_base + t % seq_len) this rotates the q heads in place,
// and writes the rotated k heads and the v heads to the caches at [b, kv_head, pos, :].
// Rotation pairs are (i, i + head_dim / 2) (the Llama / NeoX convention), with cos and sin
// from a table computed on the host in f64 (`rope` rows: pos, columns: pair i, as cos, sin):
// GPU sin/cos lose accuracy for large angles.
//
// The caches are in the KV format src/kernels/rope.rs prepends (shaders/common/kv/write_*.wgsl:
// `kv_store`, `KV_UNIT`, `k_store`, `v_store`): invocation i of a q head rotates pair i in
// place; invocation i of a KV head stores unit i (KV_UNIT elements: 4 for f32 and f16, a q8_0
// block of 32) of the rotated k row and of the v row, so every unit has one writer and a block
// format sees its whole block (its scale needs the block's largest magnitude). Units per head
// (⌈head_dim / KV_UNIT⌉) never exceed the head_dim / 2 pairs the grid covers.

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
@group(0) @binding(3) var<storage, read_write> k_cache: array<kv_store>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<kv_store>;

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
// position pos: a q head's pair i, or a KV head's unit i of k and v.
fn rope_row(i: u32, slot: u32, t: u32, b: u32, pos: u32) {
    let half = p.head_dim / 2u;
    if (i >= half || slot >= p.n_heads + p.n_kv_heads) {
        return;
    }
    let base = t * p.qkv_stride + slot * p.head_dim;
    if (slot < p.n_heads) {
        let cs = rope[pos * half + i];
        let x0 = qkv[base + i];
        let x1 = qkv[base + i + half];
        qkv[base + i] = x0 * cs.x - x1 * cs.y;
        qkv[base + i + half] = x1 * cs.x + x0 * cs.y;
        return;
    }
    if (i * KV_UNIT >= p.head_dim) {
        return;
    }
    let kv_head = slot - p.n_heads;
    let row = (b * p.n_kv_heads + kv_head) * p.cache_len + pos;
    let v_base = t * p.qkv_stride + (p.n_heads + p.n_kv_heads + kv_head) * p.head_dim;
    var k: array<f32, KV_UNIT>;
    var v: array<f32, KV_UNIT>;
    for (var e = 0u; e < KV_UNIT; e++) {
        let j = i * KV_UNIT + e;
        k[e] = 0.0;
        v[e] = 0.0;
        if (j < p.head_dim) {
            // Element j is the first (j < half) or second half of rotation pair j mod half.
            let pair = select(j - half, j, j < half);
            let cs = rope[pos * half + pair];
            let x0 = qkv[base + pair];
            let x1 = qkv[base + pair + half];
            k[e] = select(x1 * cs.x + x0 * cs.y, x0 * cs.x - x1 * cs.y, j < half);
            v[e] = qkv[v_base + j];
        }
    }
    let hd4 = p.head_dim / 4u;
    k_store(row, hd4, i, k);
    v_store(row, hd4, i, v);
}
