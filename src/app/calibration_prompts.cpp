// Calibration prompts for router statistics: files, JSONL, or the built-in set.
#include "calibration_prompts.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace hr::app {

namespace {

namespace fs = std::filesystem;

// What a document-processing deployment routes: invoices, contracts, support mail, reports, and chat.
constexpr const char* kBuiltin[] = {
    "INVOICE No. 2024-0117\nBill to: Northwind Traders Ltd, 42 Harbour Road, Leeds LS1 4AP\nDate: 14 March 2024\n"
    "Due: 13 April 2024\n\nDescription                         Qty   Unit price   Amount\nConsulting services, Feb 2024"
    "        18    EUR 120.00   EUR 2,160.00\nTravel expenses (receipts attached)  1    EUR 342.50   EUR 342.50\n"
    "Subtotal EUR 2,502.50  VAT 20% EUR 500.50  Total EUR 3,003.00\nPlease pay by bank transfer to IBAN "
    "DE89 3704 0044 0532 0130 00 quoting the invoice number.",
    "SERVICE AGREEMENT\nThis Agreement is entered into as of 1 January 2025 between Acme Analytics GmbH (the "
    "\"Provider\") and Globex Corporation (the \"Client\"). 1. Services. The Provider shall deliver the data "
    "processing services described in Schedule A. 2. Term. This Agreement commences on the Effective Date and "
    "continues for twelve (12) months unless terminated earlier in accordance with Section 9. 3. Fees. The "
    "Client shall pay the fees set out in Schedule B within thirty (30) days of receipt of a valid invoice. "
    "4. Confidentiality. Each party shall keep the other party's Confidential Information in strict confidence.",
    "Subject: Order #558213 arrived damaged\n\nHi team,\nthe espresso machine I ordered last week arrived with "
    "a cracked water tank and the box was clearly crushed. I attached three photos. Can you send a replacement "
    "or refund me? I'd prefer a replacement since it was a birthday gift.\nThanks,\nMaria Gonzalez",
    "Quarterly report Q3 2024. Revenue grew 12% year over year to $48.2 million, driven by the enterprise "
    "segment (+19%). Gross margin improved to 61.4% from 58.9%. Operating expenses rose 7% as we expanded the "
    "sales team in EMEA. Net income was $5.1 million, or $0.42 per diluted share. Cash and equivalents stood at "
    "$73.5 million at quarter end. Outlook: we expect Q4 revenue between $50 and $52 million.",
    "Meeting minutes - Product steering committee, 3 October\nAttendees: J. Park (chair), L. Weber, S. Okafor, "
    "R. Silva\n1. Release 4.2 slipped by one week because of the payment provider migration. Action: L. Weber "
    "to confirm the new date with the provider by Friday.\n2. Customer churn in the SMB tier rose to 3.1% "
    "monthly. S. Okafor presented the exit survey results.\n3. Budget for Q1 hiring approved: two backend "
    "engineers and one designer.",
    "Patient discharge summary. Admission date: 2 May. Diagnosis: community-acquired pneumonia, right lower "
    "lobe. Treatment: IV ceftriaxone for three days, then oral amoxicillin. Condition at discharge: afebrile, "
    "oxygen saturation 97% on room air. Follow-up with the general practitioner in one week; chest X-ray in "
    "six weeks.",
    "[INST] Can you explain the difference between a Roth IRA and a traditional IRA in simple terms? I'm 28 "
    "and just started my first full-time job. [/INST]",
    "[INST] Write a polite email to my landlord asking to fix the heating, which has been broken for five "
    "days. Mention that I reported it on Monday by phone. [/INST]",
    "[INST] Summarize the following text in two sentences: The city council voted on Tuesday to expand the "
    "bike lane network by 40 kilometres over the next three years, funded by a combination of federal grants "
    "and a small increase in parking fees. Opponents argued that the fees would hurt local shops. [/INST]",
    "[INST] I have a CSV with columns date, store, product, units, price. How do I compute monthly revenue per "
    "store with pandas? [/INST]",
    "[INST] Classify this support ticket as billing, technical, shipping or other: \"I was charged twice for "
    "my subscription this month and the second charge has not been refunded.\" [/INST]",
    "[INST] Translate into German: \"The shipment will be delayed by two days due to customs inspection. We "
    "apologise for the inconvenience.\" [/INST]",
};

Result<std::string> read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return errorf("--calibrate: cannot read '{}'", p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Status read_jsonl(const fs::path& p, std::vector<std::string>& out) {
    HR_ASSIGN(std::string text, read_text(p));
    std::istringstream lines(text);
    std::string line;
    for (int n = 1; std::getline(lines, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_string()) {
            out.push_back(j.get<std::string>());
            continue;
        }
        const char* key = j.is_object() ? (j.contains("text") ? "text" : j.contains("prompt") ? "prompt" : nullptr) : nullptr;
        if (!key || !j[key].is_string())
            return errorf("--calibrate: {}:{}: expected a JSON string or an object with a string \"text\" or "
                          "\"prompt\"", p.string(), n);
        out.push_back(j[key].get<std::string>());
    }
    return ok();
}

Status read_file(const fs::path& p, std::vector<std::string>& out) {
    if (p.extension() == ".jsonl") return read_jsonl(p, out);
    HR_ASSIGN(std::string text, read_text(p));
    if (!text.empty()) out.push_back(std::move(text));
    return ok();
}

}  // namespace

Result<std::vector<std::string>> read_calibration_prompts(const std::string& spec) {
    std::vector<std::string> out;
    if (spec == "builtin") return std::vector<std::string>(std::begin(kBuiltin), std::end(kBuiltin));
    std::error_code ec;
    const fs::path p(spec);
    if (fs::is_directory(p, ec)) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(p, ec)) {
            const std::string ext = e.path().extension().string();
            if (e.is_regular_file(ec) && (ext == ".txt" || ext == ".md" || ext == ".jsonl")) files.push_back(e.path());
        }
        if (ec) return errorf("--calibrate: cannot list '{}': {}", spec, ec.message());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) HR_TRY(read_file(f, out));
    } else if (fs::is_regular_file(p, ec)) {
        HR_TRY(read_file(p, out));
    } else {
        return errorf("--calibrate: '{}' is not a file, a directory or `builtin`", spec);
    }
    if (out.empty())
        return errorf("--calibrate: '{}' holds no prompts (expected .txt/.md files or JSONL lines)", spec);
    return out;
}

}  // namespace hr::app
