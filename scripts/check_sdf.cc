// Strict SDF check: loads a world with libsdformat and fails on any error, on any warning and on any
// element the SDF specification does not know (plugin contents stay free-form, as in Gazebo).
// Build: g++ -std=c++17 check_sdf.cc $(pkg-config --cflags --libs sdformat12) -o check_sdf
#include <iostream>
#include <sdf/sdf.hh>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: check_sdf WORLD.sdf" << std::endl;
    return 2;
  }
  sdf::ParserConfig config;
  config.SetUnrecognizedElementsPolicy(sdf::EnforcementPolicy::ERR);
  config.SetWarningsPolicy(sdf::EnforcementPolicy::ERR);
  sdf::Root root;
  const sdf::Errors errors = root.Load(argv[1], config);
  for (const auto &error : errors) std::cerr << error << std::endl;
  if (!errors.empty()) return 1;
  std::cout << argv[1] << ": SDF " << root.Version() << ", " << root.WorldCount() << " world(s), OK" << std::endl;
  return 0;
}
