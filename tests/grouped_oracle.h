// The fp64 oracle of a grouped (MoE) GEMM problem, for the CPU and GPU tests: each checked row
// against its own expert's weights. The expert's slices are taken here, by hand, independently of
// grouped_expert_args (which the twin and the sm_89 kernel use), so a mistake there shows.
#pragma once

#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/random.h"

namespace fp8lm {

// rows: global row ids, sorted. ref/abs_ref: [rows.size(), n] (cpu::gemm_fp8_blockwise_oracle's).
inline Status grouped_oracle(const HostGroupedGemmProblem& p, const std::vector<int>& rows, std::vector<double>* ref,
                             std::vector<double>* abs_ref) {
  const int kb = ceil_div(p.k, kQuantGroup), nb = ceil_div(p.n, kQuantGroup);
  ref->assign(rows.size() * p.n, 0.0);
  abs_ref->assign(rows.size() * p.n, 0.0);
  std::size_t i = 0;
  for (int e = 0; e < p.num_experts && i < rows.size(); ++e) {
    std::vector<int> mine;  // global row ids: the oracle reads them from the whole of A
    const std::size_t at = i;
    for (; i < rows.size() && rows[i] < p.offsets[e + 1]; ++i) mine.push_back(rows[i]);
    if (mine.empty()) continue;
    // Expert e's weights start on a 16-byte boundary (k % 16 == 0); its scale block need not,
    // and the oracle checks the GPU's alignment rule, so the scales are copied.
    const std::vector<float> scales(p.b_scales.begin() + static_cast<std::ptrdiff_t>(e) * nb * kb,
                                    p.b_scales.begin() + static_cast<std::ptrdiff_t>(e + 1) * nb * kb);
    const Fp8GemmArgs expert{p.a.data(), p.a_scales.data(), p.b.data() + static_cast<std::size_t>(e) * p.n * p.k,
                             scales.data(), nullptr, p.total_rows, p.n, p.k};
    FP8LM_RETURN_IF_ERROR(cpu::gemm_fp8_blockwise_oracle(expert, mine, ref->data() + at * p.n, abs_ref->data() + at * p.n));
  }
  return Status::Ok();
}

}  // namespace fp8lm
