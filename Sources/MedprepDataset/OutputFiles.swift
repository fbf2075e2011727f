/// The names of the files `medprep convert` writes into OUT, for convert, verify and resume.
public enum OutputFiles {
    /// Progress of a running or interrupted conversion (`--resume` reads it).
    public static let journal = ".medprep-journal.json"

    /// Files convert writes (and only those): index.json, the journal, shard-NNNNN.safetensors,
    /// and their `NAME.tmp-PID` partial writes. Anything else in OUT belongs to the user.
    public static func isOwn(_ name: String) -> Bool {
        func isShard(_ s: Substring) -> Bool {
            guard s.hasPrefix("shard-"), s.hasSuffix(".safetensors") else { return false }
            let digits = s.dropFirst(6).dropLast(12)
            return digits.count >= 5 && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber)
        }
        func isFinal(_ s: Substring) -> Bool { s == "index.json" || s == Substring(journal) || isShard(s) }
        if isFinal(Substring(name)) { return true }
        guard let r = name.range(of: ".tmp-", options: .backwards) else { return false }
        let pid = name[r.upperBound...]
        return !pid.isEmpty && pid.allSatisfy(\.isNumber) && isFinal(name[..<r.lowerBound])
    }
}
