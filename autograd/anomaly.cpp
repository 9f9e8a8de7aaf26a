// Anomaly mode (engine.h): NaN / infinity checks on recorded ops' outputs and on backward
// gradients, and the call stack that tells the user where the offending op was recorded.
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <link.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/engine.h"
#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/node.h"

namespace ag {
namespace {

// What a tensor holds that it should not: kind "" (all finite), "NaN" or "infinity", at `index`.
struct Bad {
  const char* kind = "";
  int64_t index = 0;
};

Bad find_non_finite(const Tensor& t) {
  Bad r;
  if (!t.defined() || !is_floating(t.dtype())) return r;
  NoGradGuard ng;
  Tensor c = kernels::in_compute(t.detach()).contiguous();
  kernels::dispatch_floating(c.dtype(), "anomaly", [&]<class T>() {
    const T* p = c.data<T>();
    for (int64_t i = 0, n = c.numel(); i < n; ++i)
      if (!std::isfinite(p[i])) {
        r.kind = std::isnan(p[i]) ? "NaN" : "infinity";
        r.index = i;
        return;
      }
  });
  return r;
}

std::string input_shapes(const Node& node) {
  std::string s;
  for (size_t i = 0; i < node.tape.input_meta.size(); ++i) {
    if (i) s += ", ";
    s += to_string(node.tape.input_meta[i].shape);
  }
  return s.empty() ? "none" : s;
}

// ---- call stack to text ----

struct Frame {
  std::string function;  // demangled, "" if unknown
  std::string place;     // file:line, "" if unknown
  std::string object;    // the binary or library
  bool in_library = false;
};

void* library_base() {
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&find_non_finite), &self) == 0) return nullptr;
  return self.dli_fbase;
}

void* program_base() {
  Dl_info info;
  void* main_sym = dlsym(RTLD_DEFAULT, "main");
  if (!main_sym || dladdr(main_sym, &info) == 0) return nullptr;
  return info.dli_fbase;
}

// One `addr2line` run for one address: function and file:line (needs binutils; "" when absent).
void addr2line(const std::string& object, uintptr_t offset, Frame& f) {
  if (object.find('\'') != std::string::npos) return;
  std::string cmd = fmt::format("addr2line -C -f -e '{}' {:#x} 2>/dev/null", object, offset);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return;
  char line[1024];
  std::string fn, at;
  if (fgets(line, sizeof line, p)) fn = line;
  if (fgets(line, sizeof line, p)) at = line;
  pclose(p);
  auto chomp = [](std::string& s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  };
  chomp(fn);
  chomp(at);
  if (!fn.empty() && fn != "??") f.function = fn;
  if (!at.empty() && at.rfind("??", 0) != 0 && at.find(":?") == std::string::npos &&
      at.find(":0") != at.size() - 2)
    f.place = at;
}

Frame resolve(void* pc, void* lib_base, void* prog_base) {
  Frame f;
  Dl_info info;
  // The return address points after the call; step back into the call instruction.
  void* at = static_cast<char*>(pc) - 1;
  if (dladdr(at, &info) == 0 || !info.dli_fbase) return f;
  f.object = info.dli_fname ? info.dli_fname : "";
  if (info.dli_fbase == prog_base || f.object.empty()) f.object = "/proc/self/exe";
  // Shared library or position-independent program: addresses relative to the load base.
  auto* ehdr = static_cast<const ElfW(Ehdr)*>(info.dli_fbase);
  uintptr_t off = reinterpret_cast<uintptr_t>(at);
  if (ehdr->e_type == ET_DYN) off -= reinterpret_cast<uintptr_t>(info.dli_fbase);
  f.in_library = info.dli_fbase == lib_base && lib_base != prog_base;
  if (f.in_library) return f;  // not shown: no need to resolve
  addr2line(f.object, off, f);
  if (f.function.empty() && info.dli_sname) {
    int status = 0;
    char* d = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    f.function = status == 0 && d ? d : info.dli_sname;
    std::free(d);
  }
  // The engine linked statically into the program: recognise its frames by namespace.
  if (!f.in_library && f.function.rfind("ag::", 0) == 0 && f.function.rfind("ag::nn::", 0) != 0)
    f.in_library = true;
  return f;
}

std::string describe(const Frame& f) {
  std::string where = f.place.empty() ? f.object : f.place;
  return f.function.empty() ? where : fmt::format("{} (in {})", where, f.function);
}

}  // namespace

std::string describe_recorded_at(Node& node) {
  if (!node.diagnostics.recorded_at.empty()) return node.diagnostics.recorded_at;
  if (node.diagnostics.recorded_stack.empty())
    return "an unknown place (turn anomaly mode on before the forward)";
  void* lib = library_base();
  void* prog = program_base();
  std::string first, callers;
  int shown = 0;
  for (void* pc : node.diagnostics.recorded_stack) {
    Frame f = resolve(pc, lib, prog);
    if (f.in_library || (f.function.empty() && f.place.empty())) continue;
    if (shown == 0) {
      first = describe(f);
    } else {
      callers += fmt::format("; called from {}", describe(f));
    }
    if (++shown == 3) break;
  }
  if (first.empty()) return "an unknown place (no frame outside the library)";
  node.diagnostics.recorded_at = first;
  return first + callers;
}

void anomaly_check_forward(Node& node, const Tensor* outputs, size_t count) {
  if (node.diagnostics.recorded_stack.empty()) {
    void* frames[32];
    int n = backtrace(frames, 32);
    node.diagnostics.recorded_stack.assign(frames + 1, frames + n);  // frame 0 is this function
  }
  for (size_t k = 0; k < count; ++k) {
    Bad b = find_non_finite(outputs[k]);
    if (*b.kind)
      fail<AnomalyError>(
          "anomaly in forward: {} produced {} at element {} of its output{} of shape {}; its "
          "inputs have shapes {}; recorded at {}",
          node.name(), b.kind, b.index, count > 1 ? fmt::format(" {}", k) : std::string(),
          outputs[k].shape(), input_shapes(node), describe_recorded_at(node));
  }
}

void anomaly_check_backward(Node& node, size_t input, const Tensor& grad) {
  Bad b = find_non_finite(grad);
  if (*b.kind)
    fail<AnomalyError>(
        "anomaly in backward: {}'s backward produced {} at element {} of the gradient for its "
        "input {} (shape {}); its inputs have shapes {}; recorded at {}",
        node.name(), b.kind, b.index, input, grad.shape(), input_shapes(node),
        describe_recorded_at(node));
}

}  // namespace ag
