#include "slim/data/npy.h"

#include <cstring>
#include <regex>

#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"

namespace slim {

namespace {

struct NpyType {
  const char* descr;
  at::ScalarType type;
};
const NpyType kTypes[] = {{"<f4", at::kFloat}, {"<f8", at::kDouble}, {"|i1", at::kChar},
                          {"<i2", at::kShort}, {"<i4", at::kInt},    {"<i8", at::kLong},
                          {"|u1", at::kByte},  {"|b1", at::kBool},   {"<f2", at::kHalf}};

}  // namespace

at::Tensor npy_load(const std::string& path) {
  std::string bytes = read_file(path);
  SLIM_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0, path,
             ": not a NumPy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else {
    SLIM_CHECK(major == 2 || major == 3, path, ": unsupported .npy version ", major);
    SLIM_CHECK(bytes.size() >= 12, path, ": truncated .npy header");
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    offset = 12;
  }
  SLIM_CHECK(bytes.size() >= offset + header_len, path, ": truncated .npy header");
  std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  SLIM_CHECK(std::regex_search(header, m, std::regex("'descr':\\s*'([^']+)'")), path,
             ": .npy header has no descr");
  std::string descr = m[1];
  if (descr == "<b1" || descr == "<u1" || descr == "<i1") descr = "|" + descr.substr(1);
  at::ScalarType dt = at::kFloat;
  bool found = false;
  for (const auto& t : kTypes)
    if (descr == t.descr) {
      dt = t.type;
      found = true;
    }
  SLIM_CHECK(found, path, ": .npy dtype '", descr,
             "' is not supported (little-endian float16/32/64, int8/16/32/64, uint8, bool)");
  SLIM_CHECK(std::regex_search(header, m, std::regex("'fortran_order':\\s*(True|False)")), path,
             ": .npy header has no fortran_order");
  SLIM_CHECK(m[1] == "False", path, ": Fortran-ordered .npy arrays are not supported");
  SLIM_CHECK(std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")), path,
             ": .npy header has no shape");
  std::vector<int64_t> shape;
  std::string dims = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator();
       ++it)
    shape.push_back(std::stoll(it->str()));
  at::Tensor t = at::empty(shape, dt);
  const size_t data_off = offset + header_len;
  SLIM_CHECK(bytes.size() - data_off == t.nbytes(), path, ": .npy data is ",
             bytes.size() - data_off, " bytes but shape (", dims, ") of ", descr, " needs ",
             t.nbytes());
  if (t.nbytes()) std::memcpy(t.data_ptr(), bytes.data() + data_off, t.nbytes());
  return t;
}

void npy_save(const at::Tensor& tensor, const std::string& path) {
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const char* descr = nullptr;
  for (const auto& e : kTypes)
    if (e.type == t.scalar_type()) descr = e.descr;
  SLIM_CHECK(descr != nullptr, "cannot write ", c10::toString(t.scalar_type()), " to .npy");
  std::string shape;
  for (int64_t d = 0; d < t.dim(); ++d) shape += std::to_string(t.size(d)) + ",";
  if (t.dim() > 1) shape.pop_back();
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Pad so that the data starts on a 64-byte boundary, ending the header with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  write_file_atomic(path, out);
}

}  // namespace slim
