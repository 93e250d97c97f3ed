fn main() -> std::process::ExitCode {
    rhbuild::cli::main()
}
