fn main() {
    std::process::exit(brine_master::cli::main());
}
