/* VoiceVibe.app's executable, compiled by `voicevibe install-launcher` (launcher.py writes the two
 * #defines above this comment: VOICEVIBE_PYTHON, the venv's Python, and VOICEVIBE_DIALOG, osascript).
 *
 * macOS asks for the microphone on behalf of the process that runs the bundle's executable. When that
 * executable is a shell script the prompt names /bin/bash, or never comes, and the app hears exact
 * zeros. So this program keeps the bundle's process and execv()s Python in its place: same process,
 * same Dock icon and name, and the microphone permission is the app's. Before that it sends its
 * output to ~/Library/Logs/voicevibe/launcher.log and tells the app (VOICEVIBE_LAUNCHER_LOG) where the
 * log is, so a failing app can show its end in a dialog. Only if Python cannot be started at all does
 * this program show the dialog itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH_SIZE 4096

static void make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    mkdir(path, 0755);
}

static void stamp(const char *what) {
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
    printf("=== %s %s\n", when, what);
    fflush(stdout);
}

/* The path, made safe inside an AppleScript string literal. */
static void quote_free(const char *in, char *out, size_t size) {
    size_t n = 0;
    for (; *in && n + 1 < size; in++)
        out[n++] = (*in == '"' || *in == '\\') ? '\'' : *in;
    out[n] = '\0';
}

int main(void) {
    char dir[PATH_SIZE], log_path[PATH_SIZE + 32];
    const char *home = getenv("HOME");
    snprintf(dir, sizeof dir, "%s/Library/Logs/voicevibe", home && *home ? home : "/tmp");
    make_dirs(dir);
    snprintf(log_path, sizeof log_path, "%s/launcher.log", dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    stamp("starting VoiceVibe: " VOICEVIBE_PYTHON " -m voicevibe");
    setenv("VOICEVIBE_LAUNCHER_LOG", log_path, 1);
    setenv("VOICEVIBE_DIALOG", VOICEVIBE_DIALOG, 1);
    char *args[] = {VOICEVIBE_PYTHON, "-m", "voicevibe", NULL};  /* Finder's -psn_ argument is dropped */
    execv(VOICEVIBE_PYTHON, args);

    const char *why = strerror(errno);
    fprintf(stderr, "cannot run %s: %s\n", VOICEVIBE_PYTHON, why);
    stamp("VoiceVibe exited with code 127");
    char python[PATH_SIZE], log_shown[sizeof log_path], script[3 * PATH_SIZE];
    quote_free(VOICEVIBE_PYTHON, python, sizeof python);
    quote_free(log_path, log_shown, sizeof log_shown);
    snprintf(script, sizeof script,
             "display dialog \"VoiceVibe cannot start: %s: %s.\n\nRun `make run` in the VoiceVibe folder, then "
             "`.venv/bin/voicevibe install-launcher` again.\n\nLog: %s\" with title \"VoiceVibe\" "
             "buttons {\"OK\"} default button 1 with icon stop", python, why, log_shown);
    pid_t pid = fork();
    if (pid == 0) {
        char *dialog[] = {VOICEVIBE_DIALOG, "-e", script, NULL};
        execv(VOICEVIBE_DIALOG, dialog);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return 127;
}
