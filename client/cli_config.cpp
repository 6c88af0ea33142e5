#include "client/cli_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/yaml_reader.h"
#include "scheduler/common/text.h"

namespace gsched::client {
namespace {

std::optional<std::string> Get(const EnvVars& env, const std::string& name) {
  auto it = env.find(name);
  if (it == env.end() || it->second.empty())
    return std::nullopt;
  return it->second;
}

// `~/x` -> `$HOME/x`.
std::string ExpandHome(const std::string& path, const EnvVars& env) {
  if (path.starts_with("~/")) {
    if (auto home = Get(env, "HOME"))
      return *home + path.substr(1);
  }
  return path;
}

Result<std::string> ReadToken(const std::string& path, const std::string& source) {
  std::ifstream in(path);
  if (!in)
    return Status::InvalidArgument(source + ": cannot read token file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (token.empty())
    return Status::InvalidArgument(source + ": token file '" + path + "' is empty");
  return token;
}

struct FileConfig {
  std::optional<std::vector<std::string>> server;
  std::optional<std::string> token_file;
  std::optional<std::string> ca_file;
  std::optional<std::string> image;
  std::optional<Duration> timeout;
  std::map<std::string, std::vector<std::string>> partitions;
};

FileConfig DecodeFile(config::YamlMap& root, const std::filesystem::path& dir, const EnvVars& env) {
  FileConfig c;
  // One URL, "URL,URL", or a sequence of URLs.
  if (config::YamlValue server = root.Get("server"); server.node().IsSequence())
    c.server = server.StringList(16, 2048);
  else if (auto text = server.String(16 * 2048))
    c.server = SplitList(*text);
  auto resolve = [&](std::optional<std::string> p) -> std::optional<std::string> {
    if (!p)
      return p;
    return config::ResolveRelativePath(ExpandHome(*p, env), dir);
  };
  c.token_file = resolve(root.Get("token_file").String());
  c.ca_file = resolve(root.Get("ca_file").String());
  c.image = root.Get("image").String();
  c.timeout = root.Get("timeout").Dur(Seconds(1), Seconds(3600));
  for (auto& [name, value] : root.Get("partitions").Entries(1000)) {
    if (!config::IsValidName(name)) {
      value.Error("invalid partition name");
      continue;
    }
    std::vector<std::string> types;
    if (value.node().IsSequence()) {
      if (auto list = value.StringList(64, 64))
        types = *list;
    } else if (auto one = value.String(64)) {
      types = {*one};
    }
    if (types.empty()) {
      value.Error("must name one GPU type or a list of them");
      continue;
    }
    c.partitions[name] = types;
  }
  return c;
}

}  // namespace

std::string DefaultConfigPath(const EnvVars& env) {
  if (auto xdg = Get(env, "XDG_CONFIG_HOME"))
    return *xdg + "/gsched/config.yaml";
  if (auto home = Get(env, "HOME"))
    return *home + "/.config/gsched/config.yaml";
  return "";
}

Result<CliConfig> ResolveConfig(const ConfigFlags& flags, const EnvVars& env) {
  CliConfig out;
  // The file first, so that the environment and flags can override it.
  std::string path;
  bool must_exist = true;
  if (flags.config) {
    path = *flags.config;
  } else if (auto p = Get(env, "GSCHED_CONFIG")) {
    path = *p;
  } else {
    path = DefaultConfigPath(env);
    must_exist = false;
  }
  FileConfig file;
  std::error_code ec;
  if (!path.empty() && (must_exist || std::filesystem::exists(path, ec))) {
    auto loaded = config::DecodeYamlFile<FileConfig>(
        path, [&](config::YamlMap& root, const std::filesystem::path& dir) {
          return DecodeFile(root, dir, env);
        });
    if (!loaded.ok()) {
      Status s = loaded.status();
      // Keep the path in front so the one-line error says which file; the message already
      // starts with the field path.
      std::string msg = s.message();
      if (msg.rfind(path, 0) != 0)
        msg = path + ": " + msg;
      return Status::InvalidArgument(msg);
    }
    file = std::move(loaded).value();
    out.config_path = path;
  }
  out.partitions = file.partitions;
  out.image = file.image.value_or("");
  out.ca_file = file.ca_file.value_or("");
  if (flags.ca_file)
    out.ca_file = *flags.ca_file;
  else if (auto c = Get(env, "GSCHED_CA_FILE"))
    out.ca_file = *c;
  out.timeout = file.timeout.value_or(Seconds(30));

  if (flags.server) {
    out.server = *flags.server;
    out.servers = SplitList(out.server);
    out.server_source = "--server";
  } else if (auto s = Get(env, "GSCHED_SERVER")) {
    out.server = *s;
    out.servers = SplitList(out.server);
    out.server_source = "GSCHED_SERVER";
  } else if (file.server) {
    out.servers = *file.server;
    for (const auto& url : out.servers)
      out.server += (out.server.empty() ? "" : ",") + url;
    out.server_source = path;
  }

  if (flags.token) {
    out.token = *flags.token;
  } else if (flags.token_file) {
    ASSIGN_OR_RETURN(out.token, ReadToken(*flags.token_file, "--token-file"));
  } else if (auto t = Get(env, "GSCHED_TOKEN")) {
    out.token = *t;
  } else if (auto f = Get(env, "GSCHED_TOKEN_FILE")) {
    ASSIGN_OR_RETURN(out.token, ReadToken(*f, "GSCHED_TOKEN_FILE"));
  } else if (file.token_file) {
    ASSIGN_OR_RETURN(out.token, ReadToken(*file.token_file, path + ": token_file"));
  }
  return out;
}

}  // namespace gsched::client
