// KV cache format q8_0, write side; the layout is read_q8_0.wgsl's. A unit is one block of 32
// (zeros past the head, which leave its scale unchanged and quantize to zero), quantized as
// ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d) half away from zero, d stored
// as f16.
// Blocks are 34 bytes, so a block shares one u32 word with a neighbour (its last two quants
// with the next block's scale, or its scale with the previous block's last quants), and the
// neighbour may be written in the same launch (the next position, or the next head). The
// block's 8 words of its own are stored whole; the shared half word is cleared and set with
// atomicAnd / atomicOr, which commute with the neighbour's on the other half. The names every
// format defines: see write_f32.wgsl.

alias kv_store = atomic<u32>;
const KV_UNIT: u32 = 32u;

// The 17 half words of the block of x: the f16 scale, then the quants two by two.
fn kv_q8_halves(x: array<f32, KV_UNIT>) -> array<u32, 17> {
    var amax = 0.0;
    for (var i = 0u; i < KV_UNIT; i++) {
        amax = max(amax, abs(x[i]));
    }
    let d = amax / 127.0;
    var id = 0.0;
    if (d != 0.0) {
        id = 1.0 / d;
    }
    var h: array<u32, 17>;
    h[0] = pack2x16float(vec2(d, 0.0)) & 0xffffu;
    for (var k = 0u; k < 16u; k++) {
        let a = x[2u * k] * id;
        let b = x[2u * k + 1u] * id;
        // Half away from zero (WGSL's round() takes ties to even).
        let qa = u32(i32(sign(a) * floor(abs(a) + 0.5))) & 0xffu;
        let qb = u32(i32(sign(b) * floor(abs(b) + 0.5))) & 0xffu;
        h[k + 1u] = qa | (qb << 8u);
    }
    return h;
}

fn kv_q8_block(row: u32, hd4: u32, unit: u32) -> u32 {
    return (row * ((hd4 + 7u) / 8u) + unit) * 34u;
}

fn k_store(row: u32, hd4: u32, unit: u32, x: array<f32, KV_UNIT>) {
    let blk = kv_q8_block(row, hd4, unit);
    let h = kv_q8_halves(x);
    let w = blk >> 2u;
    if ((blk & 2u) == 0u) {
        // Words w .. w + 7 are the block's; the low half of w + 8 is its last two quants.
        for (var j = 0u; j < 8u; j++) {
            atomicStore(&k_cache[w + j], h[2u * j] | (h[2u * j + 1u] << 16u));
        }
        atomicAnd(&k_cache[w + 8u], 0xffff0000u);
        atomicOr(&k_cache[w + 8u], h[16]);
    } else {
        // The high half of w is the scale; words w + 1 .. w + 8 are the block's.
        atomicAnd(&k_cache[w], 0x0000ffffu);
        atomicOr(&k_cache[w], h[0] << 16u);
        for (var j = 0u; j < 8u; j++) {
            atomicStore(&k_cache[w + 1u + j], h[2u * j + 1u] | (h[2u * j + 2u] << 16u));
        }
    }
}

fn v_store(row: u32, hd4: u32, unit: u32, x: array<f32, KV_UNIT>) {
    let blk = kv_q8_block(row, hd4, unit);
    let h = kv_q8_halves(x);
    let w = blk >> 2u;
    if ((blk & 2u) == 0u) {
        for (var j = 0u; j < 8u; j++) {
            atomicStore(&v_cache[w + j], h[2u * j] | (h[2u * j + 1u] << 16u));
        }
        atomicAnd(&v_cache[w + 8u], 0xffff0000u);
        atomicOr(&v_cache[w + 8u], h[16]);
    } else {
        atomicAnd(&v_cache[w], 0x0000ffffu);
        atomicOr(&v_cache[w], h[0] << 16u);
        for (var j = 0u; j < 8u; j++) {
            atomicStore(&v_cache[w + 1u + j], h[2u * j + 1u] | (h[2u * j + 2u] << 16u));
        }
    }
}
