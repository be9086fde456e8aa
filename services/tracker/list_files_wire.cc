#include "services/tracker/list_files_wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdint>

namespace groupshare::tracker {
namespace {

using google::protobuf::io::CodedOutputStream;

constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t Tag(uint32_t field, uint32_t wire_type) { return field << 3 | wire_type; }

// A field of a proto3 message: left out at its default (0, empty), as
// protobuf's serializer does. Every tag here is one byte.
size_t VarintFieldSize(uint64_t value) {
  return value == 0 ? 0 : 1 + CodedOutputStream::VarintSize64(value);
}
size_t BytesFieldSize(absl::string_view bytes) {
  return bytes.empty() ? 0 : 1 + CodedOutputStream::VarintSize64(bytes.size()) + bytes.size();
}
void WriteVarintField(CodedOutputStream& out, uint32_t field, uint64_t value) {
  if (value == 0) return;
  out.WriteTag(Tag(field, kVarint));
  out.WriteVarint64(value);
}
void WriteBytesField(CodedOutputStream& out, uint32_t field, absl::string_view bytes) {
  if (bytes.empty()) return;
  out.WriteTag(Tag(field, kLengthDelimited));
  out.WriteVarint64(bytes.size());
  out.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
}

// The uint32 counts of FileSummary, as protobuf's setters would take them.
uint64_t Count(int64_t n) { return static_cast<uint32_t>(n); }

size_t SummarySize(const FileSummaryView& f) {
  return BytesFieldSize(f.name) + VarintFieldSize(f.size) + BytesFieldSize(f.sha1) +
         VarintFieldSize(Count(f.online_seeders)) + VarintFieldSize(Count(f.online_partial));
}

}  // namespace

std::string ListFilesResponseWire(const FileListing& files, absl::string_view next_page_token) {
  size_t total = BytesFieldSize(next_page_token);
  for (const FileSummaryView& f : files) {
    const size_t size = SummarySize(f);
    total += 1 + CodedOutputStream::VarintSize64(size) + size;
  }
  std::string wire(total, '\0');
  google::protobuf::io::ArrayOutputStream array(wire.data(), static_cast<int>(wire.size()));
  CodedOutputStream out(&array);
  for (const FileSummaryView& f : files) {
    out.WriteTag(Tag(1, kLengthDelimited));
    out.WriteVarint64(SummarySize(f));
    WriteBytesField(out, 1, f.name);
    WriteVarintField(out, 2, f.size);
    WriteBytesField(out, 3, f.sha1);
    WriteVarintField(out, 4, Count(f.online_seeders));
    WriteVarintField(out, 5, Count(f.online_partial));
  }
  WriteBytesField(out, 2, next_page_token);
  return wire;
}

}  // namespace groupshare::tracker
