// The consistency sampler of gouache/sampling/samplers.py, with torch's CPU random numbers.
//
// Noise comes from a Mersenne Twister seeded as torch.Generator().manual_seed(seed) and turned
// into normal numbers as torch.randn does on the CPU, so a seed draws the same noise here as
// in Python: the same prompt and seed paint the same picture as `gouache generate`.
"use strict";

(function (root) {
  // ---------- torch's mt19937 (aten/src/ATen/core/MT19937RNGEngine.h) ----------
  class MT19937 {
    constructor(seed) {
      // manual_seed keeps the low 32 bits of the seed
      const s = Number(BigInt.asUintN(32, BigInt(seed)));
      this.state = new Uint32Array(624);
      this.state[0] = s;
      for (let j = 1; j < 624; j++) {
        const prev = this.state[j - 1] ^ (this.state[j - 1] >>> 30);
        this.state[j] = (Math.imul(1812433253, prev) + j) >>> 0;
      }
      this.index = 624;
    }

    next() {
      const mt = this.state;
      if (this.index >= 624) {
        for (let k = 0; k < 624; k++) {
          const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
          mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
        }
        this.index = 0;
      }
      let y = mt[this.index++];
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      return y >>> 0;
    }

    // uniform_real_distribution<float>(0, 1): 24 random bits
    uniform() { return (this.next() & 0xffffff) / 16777216; }
  }

  // torch.randn for a float tensor of n >= 16 values (normal_fill in DistributionTemplates.h):
  // all n uniforms first, then Box-Muller on blocks of 16 (j pairs with j + 8); when n is no
  // multiple of 16 the last 16 values are drawn again.
  function randn(gen, n) {
    if (n < 16) throw new Error("randn: fewer than 16 values take torch's other path");
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = gen.uniform();
    const fill16 = (o) => {
      for (let j = 0; j < 8; j++) {
        const u1 = 1 - data[o + j];
        const u2 = data[o + j + 8];
        const radius = Math.sqrt(-2 * Math.log(u1));
        const theta = 2 * Math.PI * u2;
        data[o + j] = radius * Math.cos(theta);
        data[o + j + 8] = radius * Math.sin(theta);
      }
    };
    for (let i = 0; i + 16 <= n; i += 16) fill16(i);
    if (n % 16) {
      for (let i = n - 16; i < n; i++) data[i] = gen.uniform();
      fill16(n - 16);
    }
    return data;
  }

  // ---------- noise levels (gouache/model/schedule.py, samplers.py) ----------
  // karras_sigmas: EDM eq. 5, n levels evenly spaced in sigma^(1/rho), then 0 (float32 values)
  function karrasSigmas(n, sigmaMin, sigmaMax, rho = 7) {
    const lo = sigmaMin ** (1 / rho), hi = sigmaMax ** (1 / rho);
    const out = [];
    for (let i = 0; i < n; i++) {
      const ramp = n > 1 ? i / (n - 1) : 0;
      out.push(Math.fround((hi + ramp * (lo - hi)) ** rho));
    }
    out.push(0);
    return out;
  }

  // The student's levels: from sigma_max down to CONSISTENCY_SIGMA_LAST, then 0.
  function consistencySigmas(steps, sigmaMax, sigmaLast) {
    return karrasSigmas(steps, Math.min(sigmaLast, sigmaMax), sigmaMax);
  }

  // Song et al., "Consistency Models" (2023), Algorithm 1: multistep consistency sampling.
  // model(x, sigma) -> Promise<denoised>; onStep(i, total, denoised) sees every step.
  async function sampleConsistency(model, seed, shape, sigmas, onStep) {
    const n = shape.reduce((a, b) => a * b, 1);
    const gen = new MT19937(seed);
    let x = randn(gen, n).map((v) => v * sigmas[0]); // pure noise at sigma_max
    for (let i = 0; i < sigmas.length - 1; i++) {
      const denoised = await model(x, sigmas[i]);
      if (onStep) await onStep(i, sigmas.length - 1, denoised);
      x = denoised;
      if (sigmas[i + 1] > 0) {
        const z = randn(gen, n); // back up to the next noise level
        x = denoised.map((d, k) => d + Math.fround(sigmas[i + 1] * z[k])); // float32 as in torch
      }
    }
    return x;
  }

  const api = { MT19937, randn, karrasSigmas, consistencySigmas, sampleConsistency };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.GouacheSampler = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
