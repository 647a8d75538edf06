// Autoregressive rollout of an operator exported by `pdeop export RUN --format torchscript`, with
// libtorch alone (no Python). The program maps a window of the last `history` states to the next
// `step` states, normalisers included; its protocol travels in the file as the extra file
// "pdeop_protocol.txt" (one "key value..." pair per line).
//
// Usage: rollout PROGRAM.pt WINDOW.bin CALLS OUT.bin BATCH N1 [N2 [N3]]
//   WINDOW.bin  float32, C order, shape [BATCH, history, N1, ...] (the initial window)
//   OUT.bin     float32, C order, shape [BATCH, CALLS * step, N1, ...] (the predicted states)
#include <torch/script.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::map<std::string, std::vector<std::string>> parse_protocol(const std::string& text) {
  std::map<std::string, std::vector<std::string>> entries;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key, word;
    if (!(words >> key)) continue;
    std::vector<std::string> values;
    while (words >> word) values.push_back(word);
    entries[key] = values;
  }
  return entries;
}

int64_t integer(const std::map<std::string, std::vector<std::string>>& protocol, const std::string& key) {
  auto found = protocol.find(key);
  if (found == protocol.end() || found->second.size() != 1) {
    throw std::runtime_error("the program's protocol has no single value for '" + key + "'");
  }
  return std::stoll(found->second[0]);
}

std::vector<float> read_floats(const std::string& path, int64_t count) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + path);
  std::vector<float> values(static_cast<size_t>(count));
  file.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (file.gcount() != static_cast<std::streamsize>(count * sizeof(float)) || file.peek() != EOF) {
    throw std::runtime_error(path + " does not hold exactly " + std::to_string(count) + " float32 values");
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7 || argc > 9) {
    std::cerr << "usage: rollout PROGRAM.pt WINDOW.bin CALLS OUT.bin BATCH N1 [N2 [N3]]\n";
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    std::unordered_map<std::string, std::string> extra{{"pdeop_protocol.txt", ""}};
    torch::jit::Module program = torch::jit::load(argv[1], torch::kCPU, extra);
    auto protocol = parse_protocol(extra["pdeop_protocol.txt"]);
    if (protocol.count("conditioning") && !protocol["conditioning"].empty()) {
      throw std::runtime_error("this example runs programs without conditioning channels");
    }
    const int64_t history = integer(protocol, "history");
    const int64_t step = integer(protocol, "step");
    const int64_t calls = std::stoll(argv[3]);
    std::vector<int64_t> shape{std::stoll(argv[5]), history};
    for (int i = 6; i < argc; ++i) shape.push_back(std::stoll(argv[i]));
    int64_t count = 1;
    for (int64_t n : shape) count *= n;
    std::vector<float> values = read_floats(argv[2], count);
    torch::Tensor window = torch::from_blob(values.data(), shape, torch::kFloat32).clone();

    std::vector<torch::Tensor> states;
    for (int64_t call = 0; call < calls; ++call) {
      torch::Tensor next = program.forward({window}).toTensor();
      if (!torch::isfinite(next).all().item<bool>()) {
        throw std::runtime_error("the rollout is no longer finite after call " + std::to_string(call + 1));
      }
      states.push_back(next);
      window = torch::cat({window, next}, 1).narrow(1, step, history).contiguous();
    }
    torch::Tensor out = torch::cat(states, 1).contiguous();
    std::ofstream file(argv[4], std::ios::binary);
    file.write(reinterpret_cast<const char*>(out.data_ptr<float>()),
               static_cast<std::streamsize>(out.numel() * sizeof(float)));
    if (!file) throw std::runtime_error(std::string("cannot write ") + argv[4]);
    std::cout << "history " << history << ", step " << step << ": " << calls << " calls, wrote "
              << out.sizes() << " to " << argv[4] << "\n";
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
