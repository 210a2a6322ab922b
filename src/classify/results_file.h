// Output of batch classification: JSONL (one object a line) or CSV (a header, then one row a document),
// written and flushed one document at a time so that a run that stops leaves a file that --resume can
// continue: the ids already written are read back (a last line cut short is dropped) and skipped.
#pragma once

#include <cstdio>
#include <map>
#include <utility>
#include <string>
#include <vector>

#include "classify/classify.h"

namespace hr {

enum class ResultFormat { jsonl, csv };

// --format (jsonl | csv), or else from the file name's extension (.jsonl, .json, .ndjson -> jsonl; .csv).
Result<ResultFormat> result_format(const std::string& format, const std::string& path);

// The CSV header for these labels: id,label,probability,p(<label>)...
std::string csv_header(const std::vector<std::string>& labels);
// One CSV field, quoted when it holds a comma, a quote, CR or LF (RFC 4180).
std::string csv_field(const std::string& s);

// One output record (without the line end).
std::string format_result(ResultFormat f, const std::string& id, const ClassifyResult& r);

struct PreviousResult {
    std::string label;
    double probability = 0.0;
};

// The results already in `path` (id -> answer). The file must have been written for the same labels (CSV:
// the same header; JSONL: the same probability keys). A last line without its line end is cut off the
// file, so that appending continues cleanly.
Result<std::map<std::string, PreviousResult>> read_previous_results(const std::string& path, ResultFormat f,
                                                                     const std::vector<std::string>& labels);

class ResultWriter {
public:
    // append: continue an existing file (no new CSV header unless it is empty).
    static Result<ResultWriter> open(const std::string& path, ResultFormat f, const std::vector<std::string>& labels,
                                     bool append);
    ResultWriter(ResultWriter&& o) noexcept : f_(o.f_), format_(o.format_), path_(std::move(o.path_)) { o.f_ = nullptr; }
    ResultWriter(const ResultWriter&) = delete;
    ResultWriter& operator=(const ResultWriter&) = delete;
    ResultWriter& operator=(ResultWriter&& o) noexcept {
        std::swap(f_, o.f_);
        format_ = o.format_;
        std::swap(path_, o.path_);
        return *this;
    }
    ~ResultWriter();
    // Writes one record and flushes it to the file.
    Status write(const std::string& id, const ClassifyResult& r);

private:
    ResultWriter(std::FILE* f, ResultFormat fmt, std::string path) : f_(f), format_(fmt), path_(std::move(path)) {}
    std::FILE* f_ = nullptr;
    ResultFormat format_;
    std::string path_;
};

}  // namespace hr
