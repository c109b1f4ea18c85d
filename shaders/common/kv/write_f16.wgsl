// KV cache format f16, write side; the layout is read_f16.wgsl's. pack2x16float is WGSL core
// (no SHADER_F16 needed). The names every format defines: see write_f32.wgsl.

alias kv_store = vec2<u32>;
const KV_UNIT: u32 = 4u;

fn kv_pack(x: array<f32, KV_UNIT>) -> vec2<u32> {
    return vec2(pack2x16float(vec2(x[0], x[1])), pack2x16float(vec2(x[2], x[3])));
}

fn k_store(row: u32, hd4: u32, unit: u32, x: array<f32, KV_UNIT>) {
    k_cache[row * hd4 + unit] = kv_pack(x);
}

fn v_store(row: u32, hd4: u32, unit: u32, x: array<f32, KV_UNIT>) {
    v_cache[row * hd4 + unit] = kv_pack(x);
}
