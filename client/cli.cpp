#include "client/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "client/directives.h"

extern char** environ;

namespace gsched::client {
namespace {

// What the command line asked for: filled by CLI11, then run once parsing succeeded.
struct Parsed {
  ConfigFlags config;
  std::function<int(Session&)> run;
  bool needs_session = true;
};

void AddJsonFlag(CLI::App* sub, bool& json) {
  sub->add_flag("--json", json, "Print the server's JSON instead of a table.");
}

// `gsched completion bash`: the subcommand tree and each command's flags, from the CLI11 app.
std::string BashCompletion(CLI::App& app) {
  std::map<std::string, std::vector<std::string>> words;  // " accounts apply" -> words.
  std::function<void(CLI::App*, const std::string&)> walk = [&](CLI::App* a,
                                                                const std::string& path) {
    std::vector<std::string>& w = words[path];
    for (CLI::App* sub : a->get_subcommands([](CLI::App*) { return true; })) {
      w.push_back(sub->get_name());
      walk(sub, path + " " + sub->get_name());
    }
    for (const CLI::Option* opt : a->get_options()) {
      for (const std::string& l : opt->get_lnames())
        w.push_back("--" + l);
      for (const std::string& s : opt->get_snames())
        w.push_back("-" + s);
    }
  };
  walk(&app, "");
  std::string s =
      "# bash completion for gsched; load with: source <(gsched completion bash)\n"
      "_gsched() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" path=\"\" w i opts=\"\"\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    case \"$path $w\" in\n";
  for (const auto& [path, _] : words) {
    if (!path.empty())
      s += "      \"" + path + "\") path=\"$path $w\" ;;\n";
  }
  s += "    esac\n  done\n  case \"$path\" in\n";
  for (const auto& [path, w] : words) {
    std::string joined;
    for (const auto& x : w)
      joined += (joined.empty() ? "" : " ") + x;
    s += "    \"" + path + "\") opts=\"" + joined + "\" ;;\n";
  }
  s += "  esac\n"
       "  COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
       "  if [[ \"$cur\" != -* ]]; then COMPREPLY+=($(compgen -f -- \"$cur\")); fi\n"
       "}\n"
       "complete -F _gsched gsched\n";
  return s;
}

constexpr std::string_view kSubmitHelp =
    "Submit a job: a command after '--', or a job script whose #GSCHED lines (the flags below) "
    "and\n"
    "common #SBATCH lines give options. Flags override the script.\n"
    "The script's text is shipped in the job (the submit host's files are not visible inside the\n"
    "job's image) and run by its shebang shell: [SHELL, -c, TEXT, NAME, ARGS...].\n"
    "--time takes units or colons (4h, 90m, 1-12:00:00); in #SBATCH lines a bare number is\n"
    "minutes as in Slurm. UNLIMITED is refused: leave --time out for the class default.\n"
    "#SBATCH --qos maps high->high, normal->normal, low/scavenger/standby->preemptible.";

constexpr std::string_view kSubmitExamples =
    "Examples:\n"
    "  gsched submit --gpus 8 --nodes 2 --gpu-type h100,h200 --time 1d --image /images/pt -- "
    "torchrun train.py\n"
    "  gsched submit job.sh -- --epochs 3       # #SBATCH / #GSCHED lines give the options\n"
    "  gsched submit --array 0-99%10 -e LR=3e-4 --image /images/pt -- python sweep.py\n"
    "  gsched submit --dry-run job.sh           # print the JobSpec JSON, contact nobody\n"
    "  id=$(gsched submit --parsable job.sh) && gsched submit --after-ok $id post.sh";

}  // namespace

EnvVars ProcessEnvironment() {
  EnvVars vars;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos)
      vars.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return vars;
}

int RunCli(std::vector<std::string> args, std::ostream& out, std::ostream& err, const Env& env) {
  // Everything after the first `--` is the job's command (or the script's arguments); CLI11 never
  // sees it, so the command may contain anything, flags included.
  std::vector<std::string> tail;
  bool has_tail = false;
  if (auto dd = std::find(args.begin(), args.end(), "--"); dd != args.end()) {
    tail.assign(dd + 1, args.end());
    args.erase(dd, args.end());
    has_tail = true;
  }

  CLI::App app("gsched: submit and watch jobs on the shared GPU pool, and administer it.",
               "gsched");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(
      "Configuration: flags > GSCHED_SERVER / GSCHED_TOKEN / GSCHED_TOKEN_FILE / GSCHED_CA_FILE > "
      "~/.config/gsched/config.yaml.\nExit codes: 0 done, 1 the server said no, 2 usage error, 3 "
      "server unreachable.\nRun 'gsched COMMAND --help' for a command's flags and examples.");
  Parsed p;
  app.add_option("--server", p.config.server,
                 "Scheduler URL, http://HOST:PORT or https://...; several, comma-separated, for a "
                 "high-availability group (requests go to the leader).");
  app.add_option("--token", p.config.token, "Bearer token (prefer --token-file or GSCHED_TOKEN).");
  app.add_option("--token-file", p.config.token_file, "File holding the bearer token.");
  app.add_option("--ca-file", p.config.ca_file,
                 "CA certificates (PEM) for an https server (also GSCHED_CA_FILE, ca_file:).");
  app.add_option("--config", p.config.config,
                 "Config file (default ~/.config/gsched/config.yaml).");

  // submit
  CLI::App* submit = app.add_subcommand("submit", std::string(kSubmitHelp));
  submit->footer(std::string(kSubmitExamples));
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, bool> switches;
  for (const GschedOption& o : GschedOptionTable()) {
    std::string name = o.short_name ? std::string("-") + o.short_name + "," : "";
    name += std::string(o.long_name);
    if (o.takes_value) {
      submit->add_option(name, values[std::string(o.long_name)], std::string(o.help))
          ->type_name(std::string(o.value_name))
          ->allow_extra_args(false);
    } else {
      submit->add_flag(name, switches[std::string(o.long_name)], std::string(o.help));
    }
  }
  SubmitArgs submit_args;
  std::vector<std::string> submit_positional;
  submit->add_option("script", submit_positional, "Job script, then its arguments.");
  submit->add_flag("--dry-run", submit_args.dry_run,
                   "Print the JobSpec JSON and exit without contacting the server.");
  submit->add_flag("--parsable", submit_args.parsable, "Print only the job id(s).");
  AddJsonFlag(submit, submit_args.json);
  submit->callback([&] {
    for (const GschedOption& o : GschedOptionTable()) {
      std::string key(o.long_name);
      if (o.takes_value) {
        const auto& v = values[key];
        if (o.repeatable) {
          for (const auto& x : v)
            submit_args.flags.emplace_back(key, x);
        } else if (!v.empty()) {
          submit_args.flags.emplace_back(key, v.back());  // The last one wins, as in Slurm.
        }
      } else if (switches[key]) {
        submit_args.flags.emplace_back(key, "");
      }
    }
    if (!submit_positional.empty()) {
      submit_args.script = submit_positional[0];
      submit_args.script_args.assign(submit_positional.begin() + 1, submit_positional.end());
      submit_args.script_args.insert(submit_args.script_args.end(), tail.begin(), tail.end());
    } else {
      submit_args.command = tail;
    }
    has_tail = false;  // Consumed.
    p.run = [&](Session& s) { return s.Submit(submit_args); };
  });

  // queue
  QueueArgs queue_args;
  CLI::App* queue = app.add_subcommand("queue", "List jobs: your own by default.");
  queue->add_flag("--all", queue_args.all, "Everyone's jobs (that you may see).");
  queue->add_option("--user", queue_args.user, "Jobs of this user.");
  queue->add_option("--account", queue_args.account, "Jobs of this account.");
  queue->add_option(
      "--state", queue_args.state,
      "States, comma-separated (default pending,starting,running; 'all' for every state).");
  queue->add_option("--limit", queue_args.limit, "At most this many jobs.");
  AddJsonFlag(queue, queue_args.json);
  queue->footer(
      "Running jobs first, then pending ones in priority order.\nExamples:\n  gsched queue\n"
      "  gsched queue --all --state pending --account kaist-nlp");
  queue->callback([&] { p.run = [&](Session& s) { return s.Queue(queue_args); }; });

  // show
  std::string show_id;
  bool show_json = false;
  CLI::App* show = app.add_subcommand("show", "A job: spec, state, attempts, and why it waits.");
  show->add_option("id", show_id, "Job id.")->required();
  AddJsonFlag(show, show_json);
  show->footer("Example:\n  gsched show 42");
  show->callback([&] { p.run = [&](Session& s) { return s.Show(show_id, show_json); }; });

  // cancel / hold / release
  std::vector<std::string> action_ids;
  for (const char* verb : {"cancel", "hold", "release"}) {
    std::string help = std::string(verb == std::string("cancel") ? "Cancel"
                                   : verb == std::string("hold") ? "Hold (keep from starting)"
                                                                 : "Release held") +
                       " jobs; an array's id acts on the whole array.";
    CLI::App* sub = app.add_subcommand(verb, help);
    sub->add_option("ids", action_ids, "Job ids.")->required();
    sub->footer(std::string("Example:\n  gsched ") + verb + " 42 43");
    sub->callback(
        [&, verb] { p.run = [&, verb](Session& s) { return s.JobAction(verb, action_ids); }; });
  }

  // logs
  LogsArgs logs_args;
  CLI::App* logs = app.add_subcommand("logs", "A job's output.");
  logs->add_option("id", logs_args.id, "Job id.")->required();
  logs->add_flag("-f,--follow", logs_args.follow, "Keep printing until the job ends.");
  logs->add_flag("--stderr", logs_args.stderr_stream, "Standard error instead of output.");
  logs->add_option("--attempt", logs_args.attempt, "Attempt number (default: the last).");
  logs->add_option("--node", logs_args.node,
                   "For a multi-node job: this node's output (default: rank 0's).");
  logs->footer(
      "Examples:\n  gsched logs 42\n  gsched logs -f --stderr 42\n  gsched logs 42 --node "
      "nacc-nvl003-n02");
  logs->callback([&] { p.run = [&](Session& s) { return s.Logs(logs_args); }; });

  // watch
  WatchArgs watch_args;
  CLI::App* watch = app.add_subcommand("watch", "Live events over the watch feed.");
  watch->add_option("job", watch_args.job, "Only this job; ends when the job ends.");
  watch->add_option("--topics", watch_args.topics, "jobs,nodes,accounts");
  watch->add_option("--since", watch_args.since, "Resume after this event sequence number.");
  watch->add_flag("--ephemeral", watch_args.ephemeral,
                  "Also pending-reason changes (job.reason), account usage and cluster summaries; "
                  "these describe the present and are never replayed.");
  AddJsonFlag(watch, watch_args.json);
  watch->footer(
      "Examples:\n  gsched watch\n  gsched watch 42 --json\n  gsched watch 42 --ephemeral");
  watch->callback([&] { p.run = [&](Session& s) { return s.Watch(watch_args); }; });

  // nodes, drain, resume
  bool nodes_json = false;
  CLI::App* nodes = app.add_subcommand("nodes", "GPU nodes: state, free GPUs, heartbeat.");
  AddJsonFlag(nodes, nodes_json);
  nodes->callback([&] { p.run = [&](Session& s) { return s.Nodes(nodes_json); }; });
  std::string node_name, drain_reason;
  CLI::App* drain = app.add_subcommand("drain", "Drain a node: finish its jobs, take no new ones.");
  drain->add_option("node", node_name, "Node name.")->required();
  drain->add_option("--reason", drain_reason, "Why (shown in gsched nodes).")->required();
  drain->footer("Example:\n  gsched drain nccc-b03-n12 --reason 'firmware update'");
  drain->callback([&] { p.run = [&](Session& s) { return s.Drain(node_name, drain_reason); }; });
  CLI::App* resume = app.add_subcommand("resume", "Put a drained node back in service.");
  resume->add_option("node", node_name, "Node name.")->required();
  resume->callback([&] { p.run = [&](Session& s) { return s.Resume(node_name); }; });

  // accounts [apply]
  bool accounts_json = false;
  CLI::App* accounts = app.add_subcommand(
      "accounts", "The account tree: shares, quotas, usage and fair-share standing.");
  AddJsonFlag(accounts, accounts_json);
  accounts->callback([&] {
    if (!p.run)
      p.run = [&](Session& s) { return s.Accounts(accounts_json); };
  });
  std::string apply_file;
  bool apply_dry_run = false;
  CLI::App* apply = accounts->add_subcommand(
      "apply", "Create or update accounts from accounts.yaml, parents first (admin).");
  apply->add_option("-f,--file", apply_file, "accounts.yaml")->required();
  apply->add_flag("--dry-run", apply_dry_run, "Validate and print the requests only.");
  apply->footer("Example:\n  gsched accounts apply -f config/accounts.yaml");
  apply->callback(
      [&] { p.run = [&](Session& s) { return s.AccountsApply(apply_file, apply_dry_run); }; });

  // quota set
  QuotaArgs quota_args;
  CLI::App* quota = app.add_subcommand("quota", "Change an account's GPU quota (admin).");
  quota->require_subcommand(1);
  CLI::App* quota_set = quota->add_subcommand("set", "Set guaranteed GPUs and the limit.");
  quota_set->add_option("account", quota_args.account, "Account name.")->required();
  quota_set->add_option("--gpu-type", quota_args.gpu_type, "GPU type.")->required();
  quota_set->add_option("--guaranteed", quota_args.guaranteed, "Guaranteed GPUs.");
  quota_set->add_option("--limit", quota_args.limit, "Most GPUs it may hold (borrowing).");
  quota_set->footer(
      "Example:\n  gsched quota set kaist-nlp --gpu-type h100 --guaranteed 64 "
      "--limit 128");
  quota_set->callback([&] { p.run = [&](Session& s) { return s.QuotaSet(quota_args); }; });

  // usage
  std::string usage_account, usage_since = "30d", usage_until;
  bool usage_json = false;
  CLI::App* usage = app.add_subcommand("usage", "Normalised GPU-hours by account, user, type.");
  usage->add_option("--account", usage_account, "Only this account (and its subtree).");
  usage->add_option("--since", usage_since, "A duration back from now (30d) or a date.")
      ->capture_default_str();
  usage->add_option("--until", usage_until, "A duration back from now or a date.");
  AddJsonFlag(usage, usage_json);
  usage->footer("Example:\n  gsched usage --account kaist --since 2027-01-01");
  usage->callback([&] {
    p.run = [&](Session& s) {
      return s.Usage(usage_account, usage_since, usage_until, usage_json);
    };
  });

  // token create / revoke
  TokenCreateArgs token_args;
  std::string revoke_id;
  CLI::App* token = app.add_subcommand("token", "Create or revoke API tokens (admin).");
  token->require_subcommand(1);
  CLI::App* create = token->add_subcommand("create", "Create a token; prints it on stdout.");
  create->add_option("--user", token_args.user, "User the token is for.")->required();
  create->add_option("--role", token_args.role, "user, coordinator, admin or worker.")
      ->capture_default_str();
  create->add_option("--account", token_args.accounts, "Account (repeatable).")
      ->allow_extra_args(false);
  create
      ->add_option("--nodes", token_args.nodes,
                   "Worker tokens (required): node names or prefixes ending in '*' it may "
                   "serve; '*' for every node (repeatable or comma-separated).")
      ->delimiter(',')
      ->allow_extra_args(false);
  create->add_option("--expires", token_args.expires, "Lifetime: 30d, 12h.")->capture_default_str();
  AddJsonFlag(create, token_args.json);
  create->footer(
      "Examples:\n  gsched token create --user alice --account kaist-nlp > alice.token\n"
      "  gsched token create --user nvl003 --role worker --nodes 'nacc-nvl003-*' > worker.token");
  create->callback([&] { p.run = [&](Session& s) { return s.TokenCreate(token_args); }; });
  CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token by id.");
  revoke->add_option("id", revoke_id, "Token id (tok_...).")->required();
  revoke->callback([&] { p.run = [&](Session& s) { return s.TokenRevoke(revoke_id); }; });

  // whoami
  bool whoami_json = false;
  CLI::App* whoami = app.add_subcommand("whoami", "Who the token says you are.");
  AddJsonFlag(whoami, whoami_json);
  whoami->callback([&] { p.run = [&](Session& s) { return s.WhoAmI(whoami_json); }; });

  // completion
  std::string shell;
  CLI::App* completion = app.add_subcommand("completion", "Print a shell completion script.");
  completion->add_option("shell", shell, "bash")->required()->check(CLI::IsMember({"bash"}));
  completion->footer("Example:\n  source <(gsched completion bash)");
  completion->callback([&] {
    p.needs_session = false;
    p.run = [&](Session&) {
      out << BashCompletion(app);
      return kExitOk;
    };
  });

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, out, err);
    return kExitOk;
  } catch (const CLI::CallForAllHelp& e) {
    app.exit(e, out, err);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (args.empty()) {
      err << app.help();
      return kExitUsage;
    }
    // Flags after the script are gsched's (they override its directives), unlike sbatch's: the
    // script's own options go after `--`.
    if (dynamic_cast<const CLI::ExtrasError*>(&e) &&
        std::find(args.begin(), args.end(), "submit") != args.end())
      what += "; options for the job script go after '--': gsched submit job.sh -- --epochs 3";
    err << "gsched: " << what << " (see gsched --help)\n";
    return kExitUsage;
  }
  if (has_tail && !tail.empty()) {
    err << "gsched: unexpected arguments after '--'\n";
    return kExitUsage;
  }
  if (!p.run) {
    err << app.help();
    return kExitUsage;
  }
  CliConfig config;
  if (p.needs_session) {
    auto resolved = ResolveConfig(p.config, env.vars);
    if (!resolved.ok()) {
      err << "gsched: " << resolved.status().message() << "\n";
      return kExitUsage;
    }
    config = std::move(resolved).value();
  }
  Session session(out, err, env, std::move(config));
  return p.run(session);
}

}  // namespace gsched::client
