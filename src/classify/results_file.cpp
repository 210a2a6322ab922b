// Writing batch classification results (JSONL / CSV) and reading a half-finished file back for --resume.
#include "classify/results_file.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace hr {

namespace fs = std::filesystem;

Result<ResultFormat> result_format(const std::string& format, const std::string& path) {
    if (format == "jsonl") return ResultFormat::jsonl;
    if (format == "csv") return ResultFormat::csv;
    if (!format.empty()) return errorf("--format: expected jsonl or csv, found '{}'", format);
    const std::string ext = fs::path(path).extension().string();
    if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return ResultFormat::jsonl;
    if (ext == ".csv") return ResultFormat::csv;
    return errorf("--output {}: cannot tell the format from the extension '{}' (expected .jsonl or .csv, or pass "
                  "--format jsonl|csv)", path, ext);
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) {
        if (c == '"') q += '"';
        q += c;
    }
    return q + "\"";
}

std::string csv_header(const std::vector<std::string>& labels) {
    std::string h = "id,label,probability";
    for (const auto& l : labels) h += "," + csv_field("p(" + l + ")");
    return h;
}

std::string format_result(ResultFormat f, const std::string& id, const ClassifyResult& r) {
    double top = 0.0;
    for (const auto& [l, p] : r.probabilities) {
        if (l == r.label) top = p;
    }
    if (f == ResultFormat::csv) {
        std::string row = csv_field(id) + "," + csv_field(r.label) + "," + fmt::format("{:.6f}", top);
        for (const auto& [l, p] : r.probabilities) row += fmt::format(",{:.6f}", p);
        return row;
    }
    nlohmann::ordered_json probs = nlohmann::ordered_json::object();
    for (const auto& [l, p] : r.probabilities) probs[l] = p;
    nlohmann::ordered_json j = {{"id", id},
                                {"label", r.label},
                                {"probability", top},
                                {"probabilities", std::move(probs)},
                                {"prompt_tokens", r.prompt_tokens},
                                {"truncated", r.truncated},
                                {"seconds", r.seconds}};
    if (r.truncated) {
        j["document_tokens"] = r.document_tokens;
        j["document_tokens_kept"] = r.document_tokens_kept;
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// Splits CSV text into records of fields (RFC 4180: quoted fields may hold commas, quotes, line ends).
Result<std::vector<std::vector<std::string>>> parse_csv(const std::string& text, const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, was_quoted = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                field += c;
            }
        } else if (c == '"') {
            if (!field.empty()) return errorf("{}: a quote inside an unquoted CSV field (record {})", path, rows.size() + 1);
            quoted = was_quoted = true;
        } else if (c == ',') {
            row.push_back(std::move(field));
            field.clear();
            was_quoted = false;
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            row.push_back(std::move(field));
            field.clear();
            was_quoted = false;
            rows.push_back(std::move(row));
            row.clear();
        } else {
            field += c;
        }
    }
    if (quoted) return errorf("{}: an unterminated quoted CSV field", path);
    (void)was_quoted;
    return rows;
}

}  // namespace

Result<std::map<std::string, PreviousResult>> read_previous_results(const std::string& path, ResultFormat f,
                                                                     const std::vector<std::string>& labels) {
    std::map<std::string, PreviousResult> out;
    std::error_code ec;
    if (!fs::exists(path, ec)) return out;
    std::ifstream in(path, std::ios::binary);
    if (!in) return errorf("--resume {}: cannot read it", path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    // A run that stopped mid-write leaves a last line without its end: drop it (it is redone).
    const size_t end = text.rfind('\n');
    const size_t keep = end == std::string::npos ? 0 : end + 1;
    if (keep != text.size()) {
        text.resize(keep);
        fs::resize_file(path, keep, ec);
        if (ec) return errorf("--resume {}: cannot cut the unfinished last line ({})", path, ec.message());
    }
    if (f == ResultFormat::csv) {
        HR_ASSIGN(auto rows, parse_csv(text, path));
        if (rows.empty()) return out;
        std::string header;
        for (size_t i = 0; i < rows[0].size(); ++i) header += (i ? "," : "") + csv_field(rows[0][i]);
        if (header != csv_header(labels))
            return errorf("--resume {}: the file's header '{}' is not the one for these labels ('{}')", path, header,
                          csv_header(labels));
        for (size_t r = 1; r < rows.size(); ++r) {
            if (rows[r].size() != 3 + labels.size())
                return errorf("--resume {}: record {} has {} fields, expected {}", path, r + 1, rows[r].size(),
                              3 + labels.size());
            PreviousResult p{rows[r][1], 0.0};
            try {
                p.probability = std::stod(rows[r][2]);
            } catch (...) {
                return errorf("--resume {}: record {}: probability '{}' is not a number", path, r + 1, rows[r][2]);
            }
            out[rows[r][0]] = p;
        }
        return out;
    }
    const std::set<std::string> want(labels.begin(), labels.end());
    std::istringstream lines(text);
    std::string line;
    int64_t n = 0;
    while (std::getline(lines, line)) {
        ++n;
        if (line.empty()) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("label") ||
            !j["label"].is_string() || !j.contains("probability") || !j["probability"].is_number() ||
            !j.contains("probabilities") || !j["probabilities"].is_object())
            return errorf("--resume {} line {}: not a result line written by headroom classify", path, n);
        std::set<std::string> got;
        for (const auto& [k, v] : j["probabilities"].items()) got.insert(k);
        if (got != want) return errorf("--resume {} line {}: written for other labels than these", path, n);
        out[j["id"].get<std::string>()] = {j["label"].get<std::string>(), j["probability"].get<double>()};
    }
    return out;
}

Result<ResultWriter> ResultWriter::open(const std::string& path, ResultFormat f, const std::vector<std::string>& labels,
                                        bool append) {
    std::error_code ec;
    const bool empty = !fs::exists(path, ec) || fs::file_size(path, ec) == 0;
    std::FILE* fp = std::fopen(path.c_str(), append ? "ab" : "wb");
    if (!fp) return errorf("--output {}: cannot open it for writing", path);
    ResultWriter w(fp, f, path);
    if (f == ResultFormat::csv && (!append || empty)) {
        const std::string h = csv_header(labels) + "\n";
        if (std::fwrite(h.data(), 1, h.size(), fp) != h.size() || std::fflush(fp) != 0)
            return errorf("--output {}: write failed", path);
    }
    return w;
}

ResultWriter::~ResultWriter() {
    if (f_) std::fclose(f_);
}

Status ResultWriter::write(const std::string& id, const ClassifyResult& r) {
    const std::string line = format_result(format_, id, r) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
        return errorf("--output {}: write failed (disk full?)", path_);
    return ok();
}

}  // namespace hr
