// conv_probe: the engine's convolutions (im2col + GEMM) against oneDNN's convolution primitives on
// the two convolutions of the cnn workload (LeNet-5, batch 64, float32), forward, input gradient
// and weight gradient. oneDNN runs once on the tensors' own nchw / oihw layouts and once on the
// blocked layouts it prefers (reorders to and from them NOT counted, so that column is a lower
// bound for a blocked-layout path). Times are CPU time per call (std::clock, so meaningful on a
// loaded machine only with OMP_NUM_THREADS=1), alternating the implementations in each round.
// Also prints the implementation oneDNN picked and the largest relative difference of results.
//
//   OMP_NUM_THREADS=1 <builddir>/bench/conv_probe
#include <cstdio>
#include <ctime>
#include <dnnl.hpp>
#include <vector>
#include "autograd/autograd.h"

namespace {
using namespace ag;    // NOLINT
using namespace dnnl;  // NOLINT
using tag = memory::format_tag;
using dt = memory::data_type;

template <class F>
double cpu_us(F f, int n) {
  f();
  std::clock_t a = std::clock();
  for (int i = 0; i < n; ++i) f();
  return double(std::clock() - a) * 1e6 / CLOCKS_PER_SEC / n;
}

struct Layer {
  int64_t N, C, H, W, K, k, p;
};

}  // namespace

int main() {
  engine eng(engine::kind::cpu, 0);
  stream st(eng);
  NoGradGuard ng;
  for (Layer L : {Layer{64, 1, 28, 28, 6, 5, 2}, Layer{64, 6, 14, 14, 16, 5, 0}}) {
    const int64_t OH = L.H + 2 * L.p - L.k + 1, OW = L.W + 2 * L.p - L.k + 1;
    Tensor x = randn({L.N, L.C, L.H, L.W}), w = randn({L.K, L.C, L.k, L.k}),
           gy = randn({L.N, L.K, OH, OW});
    Tensor y = Tensor::empty({L.N, L.K, OH, OW}), gx = Tensor::empty(x.shape()),
           gw = Tensor::empty(w.shape());
    memory::desc src({L.N, L.C, L.H, L.W}, dt::f32, tag::nchw),
        wei({L.K, L.C, L.k, L.k}, dt::f32, tag::oihw), dst({L.N, L.K, OH, OW}, dt::f32, tag::nchw);
    memory::dims s{1, 1}, pad{L.p, L.p};
    auto fd = convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct,
                                        src, wei, dst, s, pad, pad);
    auto fpd = convolution_forward::primitive_desc(fd, eng);
    auto bdd =
        convolution_backward_data::desc(algorithm::convolution_direct, src, wei, dst, s, pad, pad);
    auto bdpd = convolution_backward_data::primitive_desc(bdd, eng, fpd);
    auto bwd = convolution_backward_weights::desc(algorithm::convolution_direct, src, wei, dst, s,
                                                  pad, pad);
    auto bwpd = convolution_backward_weights::primitive_desc(bwd, eng, fpd);
    std::printf("layer C%ld->K%ld %ldx%ld: oneDNN impls fwd %s, bwd_data %s, bwd_weights %s\n", L.C,
                L.K, L.H, L.W, fpd.impl_info_str(), bdpd.impl_info_str(), bwpd.impl_info_str());
    memory xm(src, eng, x.data<float>()), wm(wei, eng, w.data<float>()),
        ym(dst, eng, y.data<float>()), gym(dst, eng, gy.data<float>()),
        gxm(src, eng, gx.data<float>()), gwm(wei, eng, gw.data<float>());
    convolution_forward fwd(fpd);
    convolution_backward_data bdata(bdpd);
    convolution_backward_weights bwei(bwpd);
    const int n = 20;
    for (int round = 0; round < 3; ++round) {
      double a = cpu_us([&] { conv2d(x, w, Tensor(), 1, L.p); }, n);
      double b = cpu_us(
          [&] {
            fwd.execute(st, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
            st.wait();
          },
          n);
      double c = cpu_us([&] { conv_transpose2d(gy, w, Tensor(), 1, L.p); }, n);
      double d = cpu_us(
          [&] {
            bdata.execute(
                st, {{DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, gxm}});
            st.wait();
          },
          n);
      double e = cpu_us([&] { conv2d_weight(x, gy, L.k, L.k, 1, L.p); }, n);
      double f = cpu_us(
          [&] {
            bwei.execute(
                st, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_DIFF_WEIGHTS, gwm}});
            st.wait();
          },
          n);
      std::printf(
          "  round %d (us, CPU time): fwd ours %.0f onednn %.0f | dx ours %.0f onednn %.0f | dw "
          "ours %.0f onednn %.0f\n",
          round, a, b, c, d, e, f);
    }

    {
      memory::desc asrc({L.N, L.C, L.H, L.W}, dt::f32, tag::any),
          awei({L.K, L.C, L.k, L.k}, dt::f32, tag::any),
          adst({L.N, L.K, OH, OW}, dt::f32, tag::any);
      auto afd =
          convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct,
                                    asrc, awei, adst, s, pad, pad);
      auto afpd = convolution_forward::primitive_desc(afd, eng);
      auto abdd = convolution_backward_data::desc(algorithm::convolution_direct, asrc, awei, adst,
                                                  s, pad, pad);
      auto abdpd = convolution_backward_data::primitive_desc(abdd, eng, afpd);
      auto abwd = convolution_backward_weights::desc(algorithm::convolution_direct, asrc, awei,
                                                     adst, s, pad, pad);
      auto abwpd = convolution_backward_weights::primitive_desc(abwd, eng, afpd);
      std::printf("  blocked layouts: impls fwd %s, bwd_data %s, bwd_weights %s\n",
                  afpd.impl_info_str(), abdpd.impl_info_str(), abwpd.impl_info_str());
      memory bx(afpd.src_desc(), eng), bw(afpd.weights_desc(), eng), by(afpd.dst_desc(), eng);
      memory bgy(abdpd.diff_dst_desc(), eng), bgx(abdpd.diff_src_desc(), eng),
          bw2(abdpd.weights_desc(), eng);
      memory bx3(abwpd.src_desc(), eng), bgy3(abwpd.diff_dst_desc(), eng),
          bgw(abwpd.diff_weights_desc(), eng);
      convolution_forward f2(afpd);
      convolution_backward_data d2(abdpd);
      convolution_backward_weights w2(abwpd);
      for (int round = 0; round < 2; ++round) {
        double b = cpu_us(
            [&] {
              f2.execute(st, {{DNNL_ARG_SRC, bx}, {DNNL_ARG_WEIGHTS, bw}, {DNNL_ARG_DST, by}});
              st.wait();
            },
            n);
        double d = cpu_us(
            [&] {
              d2.execute(
                  st,
                  {{DNNL_ARG_DIFF_DST, bgy}, {DNNL_ARG_WEIGHTS, bw2}, {DNNL_ARG_DIFF_SRC, bgx}});
              st.wait();
            },
            n);
        double f = cpu_us(
            [&] {
              w2.execute(
                  st,
                  {{DNNL_ARG_SRC, bx3}, {DNNL_ARG_DIFF_DST, bgy3}, {DNNL_ARG_DIFF_WEIGHTS, bgw}});
              st.wait();
            },
            n);
        std::printf(
            "  blocked round %d (us, CPU time, reorders not counted): fwd %.0f dx %.0f dw %.0f\n",
            round, b, d, f);
      }
    }
    // Same results?
    fwd.execute(st, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
    bdata.execute(st, {{DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, gxm}});
    bwei.execute(st, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_DIFF_WEIGHTS, gwm}});
    st.wait();
    auto maxdiff = [](const Tensor& a, const Tensor& b) {
      return amax(abs(a - b)).item() / (amax(abs(b)).item() + 1e-30);
    };
    std::printf("  rel. max difference: fwd %.2g dx %.2g dw %.2g\n",
                maxdiff(y, conv2d(x, w, Tensor(), 1, L.p)),
                maxdiff(gx, conv_transpose2d(gy, w, Tensor(), 1, L.p)),
                maxdiff(gw, conv2d_weight(x, gy, L.k, L.k, 1, L.p)));
  }
}
