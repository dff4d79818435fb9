// The `dsx` command lines behind the commands and code lenses (run, build, check, test).
// Pure functions: the extension turns them into VS Code tasks.

export type CommandName = "run" | "build" | "check" | "test";

/** What a code lens passes: the document, and the program / test it sits on. */
export interface LensArgs {
  uri?: string;
  program?: string;
  test?: string;
}

/** The arguments after `dsx` for `name` on `file`. */
export function commandArgs(name: CommandName, file: string, args: LensArgs = {}): string[] {
  switch (name) {
    case "run":
      return ["run", args.program ? `${file}:${args.program}` : file];
    case "build":
      return ["build", file];
    case "check":
      return ["check", file];
    case "test":
      if (args.test) return ["test", file, "--test", args.test];
      return args.program ? ["test", file, "--program", args.program] : ["test", file];
  }
}

/** A short title for the terminal / task. */
export function commandTitle(name: CommandName, fileName: string, args: LensArgs = {}): string {
  const what = args.test ?? args.program;
  return what ? `dsx ${name} ${fileName} (${what})` : `dsx ${name} ${fileName}`;
}
