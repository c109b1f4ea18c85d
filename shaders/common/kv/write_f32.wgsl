// KV cache format f32, write side (prepended to rope_cache.wgsl); the layout is read_f32.wgsl's.
// The names every format defines:
//   kv_store                         the element type of the `k_cache` and `v_cache` bindings;
//   KV_UNIT                          elements one invocation stores (a unit, owned wholly by it);
//   k_store(row, hd4, unit, x)       stores elements unit · KV_UNIT .. of cached K row `row`
//   v_store(row, hd4, unit, x)       (heads of hd4 vec4s) from x (zeros past the head); V too.

alias kv_store = vec4<f32>;
const KV_UNIT: u32 = 4u;

fn k_store(row: u32, hd4: u32, unit: u32, x: array<f32, KV_UNIT>) {
    k_cache[row * hd4 + unit] = vec4(x[0], x[1], x[2], x[3]);
}

fn v_store(row: u32, hd4: u32, unit: u32, x: array<f32, KV_UNIT>) {
    v_cache[row * hd4 + unit] = vec4(x[0], x[1], x[2], x[3]);
}
