// Batch classification inputs: document files, folders, JSONL on stdin, the labels file, few-shot
// example folders (see batch_inputs.h).
#include "classify/batch_inputs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"

namespace hr {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::string canonical_or_self(const std::string& p) {
    std::error_code ec;
    fs::path c = fs::weakly_canonical(p, ec);
    return ec ? p : c.string();
}

// One line of at most `limit` bytes (the newline not included); nullopt at the end of the stream.
Result<std::optional<std::string>> read_line(std::istream& in, uint64_t limit, int64_t line_no) {
    std::string line;
    std::streambuf* sb = in.rdbuf();
    int c = sb->sbumpc();
    if (c == std::char_traits<char>::eof()) return std::optional<std::string>{};
    while (c != std::char_traits<char>::eof() && c != '\n') {
        if (line.size() >= limit)
            return errorf("stdin line {}: longer than {} bytes (expected one JSON object a line, at most {} bytes)",
                          line_no, limit, limit);
        line.push_back(static_cast<char>(c));
        c = sb->sbumpc();
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return std::optional<std::string>{std::move(line)};
}

}  // namespace

Status check_document_text(std::string& text, const std::string& what) {
    if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
    if (text.empty()) return errorf("{}: the document is empty (expected text to classify)", what);
    if (const auto nul = text.find('\0'); nul != std::string::npos)
        return errorf("{}: not a text document (a NUL byte at offset {}; binary files such as PDFs or images must be "
                      "converted to text first)", what, nul);
    if (const auto bad = utf8::first_invalid(text))
        return errorf("{}: not UTF-8 text (an invalid byte 0x{:02x} at offset {})", what,
                      static_cast<unsigned char>(text[*bad]), *bad);
    if (trim(text).empty()) return errorf("{}: the document holds only white space (expected text to classify)", what);
    return ok();
}

Result<std::string> read_document_file(const std::string& path) {
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) return errorf("{}: cannot read the document (no such file)", path);
    if (fs::is_directory(st)) return errorf("{}: is a folder, expected a document file", path);
    if (!fs::is_regular_file(st)) return errorf("{}: cannot read the document (not a regular file)", path);
    const auto size = fs::file_size(path, ec);
    if (ec) return errorf("{}: cannot read the document ({})", path, ec.message());
    if (size > kMaxDocumentBytes)
        return errorf("{}: the document is {} bytes, more than the {} allowed", path, size, kMaxDocumentBytes);
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("{}: cannot read the document (permission denied or unreadable)", path);
    std::string text(static_cast<size_t>(size), '\0');
    f.read(text.data(), static_cast<std::streamsize>(size));
    if (static_cast<uint64_t>(f.gcount()) != size || f.bad())
        return errorf("{}: cannot read the document (read {} of {} bytes)", path, f.gcount(), size);
    HR_TRY(check_document_text(text, path));
    return text;
}

Result<DocumentSource> DocumentSource::open(const std::vector<std::string>& inputs,
                                            const std::vector<std::string>& exclude, std::istream& stdin_stream) {
    DocumentSource s;
    s.in_ = &stdin_stream;
    std::set<std::string> skip;
    for (const auto& e : exclude) skip.insert(canonical_or_self(e));
    if (inputs.empty()) return errorf("no documents given (expected files, folders or - for JSONL on stdin)");
    for (const std::string& in : inputs) {
        if (in == "-") {
            if (s.has_stdin_) return errorf("- (stdin) is given more than once");
            s.has_stdin_ = true;
            s.items_.push_back({in});
            continue;
        }
        std::error_code ec;
        if (fs::is_directory(in, ec)) {
            std::vector<std::string> names;
            for (const auto& e : fs::directory_iterator(in, ec)) {
                const std::string name = e.path().filename().string();
                if (name.empty() || name[0] == '.') continue;
                std::error_code ec2;
                if (e.is_directory(ec2)) continue;
                if (skip.contains(canonical_or_self(e.path().string()))) continue;
                names.push_back(name);
            }
            if (ec) return errorf("{}: cannot list the folder ({})", in, ec.message());
            std::sort(names.begin(), names.end());
            if (names.empty()) return errorf("{}: the folder holds no documents", in);
            for (const auto& n : names) s.items_.push_back({(fs::path(in) / n).string()});
            s.n_files_ += static_cast<int64_t>(names.size());
            continue;
        }
        s.items_.push_back({in});  // a missing file is reported, with its name, when it is reached
        s.n_files_ += 1;
    }
    return s;
}

Result<std::optional<BatchDocument>> DocumentSource::next() {
    while (at_ < items_.size()) {
        const Item& it = items_[at_];
        if (it.path != "-") {
            ++at_;
            HR_ASSIGN(std::string text, read_document_file(it.path));
            return std::optional<BatchDocument>(BatchDocument{it.path, it.path, std::move(text)});
        }
        HR_ASSIGN(std::optional<std::string> line, read_line(*in_, kMaxDocumentBytes * 2, stdin_line_ + 1));
        if (!line) {
            ++at_;
            continue;
        }
        ++stdin_line_;
        const std::string where = fmt::format("stdin line {}", stdin_line_);
        if (trim(*line).empty()) continue;
        nlohmann::json j = nlohmann::json::parse(*line, nullptr, false);
        if (j.is_discarded() || !j.is_object())
            return errorf("{}: expected a JSON object {{\"id\": ..., \"text\": ...}}, found '{}'", where,
                          line->substr(0, 80));
        auto id = j.find("id");
        if (id == j.end() || !(id->is_string() || id->is_number_integer()))
            return errorf("{}: expected \"id\" (a string or an integer)", where);
        auto text = j.find("text");
        if (text == j.end() || !text->is_string()) return errorf("{}: expected \"text\" (a string)", where);
        BatchDocument d;
        d.id = id->is_string() ? id->get<std::string>() : id->dump();
        if (d.id.empty()) return errorf("{}: \"id\" is empty", where);
        d.text = text->get<std::string>();
        HR_TRY(check_document_text(d.text, fmt::format("{} (id {})", where, d.id)));
        return std::optional<BatchDocument>(std::move(d));
    }
    return std::optional<BatchDocument>{};
}

LabelSet parse_label_list(const std::string& s) {
    LabelSet out;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        out.labels.push_back(trim(s.substr(i, j - i)));
        i = j + 1;
    }
    return out;
}

Result<LabelSet> read_labels_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("--labels-file {}: cannot open it", path);
    LabelSet out;
    std::string line;
    int64_t n = 0;
    bool any_description = false;
    while (std::getline(f, line)) {
        ++n;
        if (line.size() > kMaxLabelBytes + kMaxLabelDescriptionBytes + 16)
            return errorf("--labels-file {} line {}: {} bytes, longer than a label and its description may be", path, n,
                          line.size());
        const std::string t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        if (utf8::first_invalid(t)) return errorf("--labels-file {} line {}: not UTF-8 text", path, n);
        const auto colon = t.find(": ");
        std::string label = trim(t.substr(0, colon));
        std::string desc = colon == std::string::npos ? "" : trim(t.substr(colon + 2));
        if (label.empty()) return errorf("--labels-file {} line {}: expected 'label' or 'label: description'", path, n);
        any_description = any_description || !desc.empty();
        out.labels.push_back(std::move(label));
        out.descriptions.push_back(std::move(desc));
    }
    if (out.labels.empty()) return errorf("--labels-file {}: no labels (expected one label a line)", path);
    if (!any_description) out.descriptions.clear();
    return out;
}

Result<std::vector<ClassifyExample>> read_examples_dir(const std::string& dir) {
    const fs::path manifest = fs::path(dir) / "manifest.jsonl";
    std::ifstream f(manifest, std::ios::binary);
    if (!f) return errorf("--examples {}: cannot open {} (expected one {{\"file\", \"label\"}} object a line)", dir,
                          manifest.string());
    std::vector<ClassifyExample> out;
    std::string line;
    int64_t n = 0;
    while (std::getline(f, line)) {
        ++n;
        if (trim(line).empty()) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("file") || !j["file"].is_string() ||
            !j.contains("label") || !j["label"].is_string())
            return errorf("{} line {}: expected {{\"file\": ..., \"label\": ...}}", manifest.string(), n);
        if (out.size() >= kMaxClassifyExamples)
            return errorf("{}: more than {} examples", manifest.string(), kMaxClassifyExamples);
        HR_ASSIGN(std::string text, read_document_file((fs::path(dir) / j["file"].get<std::string>()).string()));
        out.push_back({trim(text), j["label"].get<std::string>()});
    }
    if (out.empty()) return errorf("{}: no examples", manifest.string());
    return out;
}

}  // namespace hr
