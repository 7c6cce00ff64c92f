"""The programs the host runs itself, as real modules: the configure step (`mlflow-configure`, in MLflow's
venv) and the certificate's saved state (`mlflow-certificate-state`, in certbot's venv).

They reach the host through the user data (userdata/programs.py): each module a program imports from
this package, lean (userdata/pysource.py), under layout.HOST_PROGRAMS_DIR, and a short executable per
program that puts that directory on `sys.path` and calls the program's `main(arguments, settings_file)`
with the venv's interpreter. Both venvs import the same files, so what the two programs share
(settings_file, aws) exists once.

Every per-stack value (region, SSM parameter names, paths, waits, ...) comes from the settings file the
user data writes (layout.HOST_SETTINGS, rendered by userdata/program_settings.py), read and checked
before anything else; nothing here is a template. boto3, psycopg2, MLflow and cryptography are imported
where they are used: each venv has the ones its program needs.
"""
