export default function App() {
  return (
    <main className="min-h-screen bg-slate-50 text-slate-900 flex items-center justify-center p-8">
      <div className="max-w-xl text-center space-y-4">
        <h1 className="text-4xl font-bold tracking-tight">My site</h1>
        <p className="text-lg text-slate-600">
          Describe what you want and the agent builds it here.
        </p>
      </div>
    </main>
  );
}
