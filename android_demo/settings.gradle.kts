// The tfpipe Android demo: `app` (CameraX + LiteRT, the three modes) and `core` (pure Kotlin, no
// Android imports: model.json, preprocessing, decoding, delegate policy; tested on the JVM).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "tfpipe-demo"
include(":app", ":core")
